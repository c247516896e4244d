"""Preprocessing: spatial fitting, intensity normalisation, augmentation and the preprocess stage."""
