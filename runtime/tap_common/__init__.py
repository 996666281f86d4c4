"""Code shared by every Lambda package; shipped in the layer as the top-level package `tap_common`."""
