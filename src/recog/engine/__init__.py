"""Task-agnostic loops: training, evaluation."""
