"""Rendering masks over images (colour overlays) for previews, reports and `segflow predict`."""
