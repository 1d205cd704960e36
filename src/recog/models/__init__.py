"""Model registry (named presets → transformers models + preprocessing) and bundles."""

from recog.models.bundle import BUNDLE_FORMAT_VERSION, BundleManifest, read_manifest, save_bundle, update_bundle
from recog.models.registry import Preset, create_model, get_preset, list_presets

__all__ = ["BUNDLE_FORMAT_VERSION", "BundleManifest", "Preset", "create_model", "get_preset", "list_presets",
           "read_manifest", "save_bundle", "update_bundle"]
