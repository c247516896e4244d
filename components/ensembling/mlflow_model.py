"""The packaged fold ensemble, as an MLflow "model from code".

MLflow executes this file when the model is loaded; ``code_paths`` ships the ``components``
package with the model, so loading needs no pickled classes.

Input: raw images as a float32 array ``(N, H, W, C)`` of one size, gray (C = 1) or RGB (C = 3)
whatever the training channels (converted like the training data); for a 3D model one volume
``(C, Z, Y, X)`` (or ``(Z, Y, X)``) with param ``spacing`` = ``"z,y,x"`` in mm (output then has
N = 1: ``(1, Z, Y, X)`` labels or ``(1, K, Z, Y, X)`` probabilities, on the input's grid).
Params: ``output`` = ``"labels"`` (default; ``(N, H, W)`` int64) or ``"probabilities"``
(``(N, K, H, W)`` float32);
``input_dtype`` = the images' stored dtype (e.g. ``"uint8"``, ``"uint16"``) so that intensity
normalisation by dtype range sees the original integers (the float32 transport hides them).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class FoldEnsembleModel(PythonModel):
    """Preprocessing + fold networks + TTA behind one ``predict``."""

    def load_context(self, context: Any) -> None:
        """Rebuild the fold networks from their checkpoints."""
        from components.inference.predictor import predictor_from_checkpoints

        with open(context.artifacts["ensemble_config"]) as fh:
            cfg = json.load(fh)
        keys = sorted(k for k in context.artifacts if k.startswith("fold_"))
        from components.inference.options import InferenceOptions

        options = InferenceOptions.from_json(cfg.get("inference") or {"tta": cfg["tta"]})
        self.predictor = predictor_from_checkpoints([context.artifacts[k] for k in keys], options=options)
        self.options = options  # labels: argmax, then the postprocessing chosen on CV
        self.class_names: list[str] = cfg["class_names"]

    # No type hints on predict: MLflow would try to derive a schema from them; the signature is explicit.
    def predict(self, context, model_input, params=None):
        """Segment a batch of raw images of one size.

        Shape:
            model_input: (N, H, W, C), (N, H, W) or (H, W) -> (N, H, W) labels or (N, K, H, W) probabilities
        """
        params = params or {}
        x = np.asarray(model_input, dtype=np.float32)
        dtype = params.get("input_dtype") or None
        if getattr(self.predictor.spec, "ndim", 2) == 3:  # one volume (C, Z, Y, X) or (Z, Y, X)
            spacing = [float(s) for s in str(params.get("spacing") or "").split(",") if s.strip()]
            vol = x.astype(dtype) if dtype else x
            probs = self.predictor.predict_proba(vol, spacing or None)[None]
            if params.get("output", "labels") == "probabilities":
                return probs
            return self.options.labels(probs[0])[None].astype(np.int64)
        if dtype is None and self.predictor.spec.intensity_method == "dtype" and x.size and x.max() > 1:
            raise ValueError(
                "this model normalises intensities by the images' dtype range; pass "
                "params={'input_dtype': 'uint8'} (or 'uint16', ...) with the original pixel values"
            )
        probs = np.stack([self.predictor.predict_proba(img.astype(dtype) if dtype else img) for img in x])
        if params.get("output", "labels") == "probabilities":
            return probs
        return np.stack([self.options.labels(p) for p in probs]).astype(np.int64)


mlflow.models.set_model(FoldEnsembleModel())
