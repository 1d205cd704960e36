"""Object detection: box formats, box coding, NMS, losses, the detector network, drawing and evaluation."""
