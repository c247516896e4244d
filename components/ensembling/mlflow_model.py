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

from components.core.threads import prepare_openmp

# MLflow runs this file in the loading process (segflow predict, the scoring server, a plain MLflow
# client) before load_context imports torch: OpenMP reads its wait policy only when torch loads it.
# load_context then sets the thread count (components/core/threads.py).
prepare_openmp()


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
        if cfg.get("members"):  # several configurations (3d and 2d), their probabilities averaged
            from components.inference.configurations import Member, predictor_from_members

            members = [
                Member(
                    m["name"],
                    tuple(context.artifacts[a] for a in m["artifacts"]),
                    InferenceOptions.from_json(m["inference"]),
                )
                for m in cfg["members"]
            ]
            self.predictor = predictor_from_members(members, options.postprocessing)
        else:
            self.predictor = predictor_from_checkpoints([context.artifacts[k] for k in keys], options=options)
        self.options = options  # labels: argmax, then the postprocessing chosen on CV
        self.class_names: list[str] = cfg["class_names"]
        from components.ensembling.rois import ROIS_KEY

        self.trained_with_rois = bool(cfg.get(ROIS_KEY, False))  # segflow predict warns without --rois
        from components.ensembling.input_guard import TRAINING_DATA_KEY

        self.training_data = cfg.get(TRAINING_DATA_KEY)  # inputs far outside it are named or refused

    # np.ndarray is a hint MLflow accepts without deriving a schema from it: the signature stays
    # the explicit one written at packaging (tensor input + params), and MLflow does not warn.
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Segment a batch of raw images of one size.

        Shape:
            model_input: (N, H, W, C), (N, H, W) or (H, W) -> (N, H, W) labels or (N, K, H, W) probabilities
        """
        from components.ensembling.serving import ModelInputError, check_model_input

        spec = self.predictor.spec  # a bad request raises ModelInputError: served as HTTP 400
        req = check_model_input(model_input, params, getattr(spec, "ndim", 2), spec.channels)
        x, dtype, output = req.x, req.input_dtype, req.output
        self._check_against_training(x, req.spacing, params)
        if getattr(self.predictor.spec, "ndim", 2) == 3:  # one volume (C, Z, Y, X)
            vol = x.astype(dtype) if dtype else x
            probs = self.predictor.predict_proba(vol, req.spacing)[None]
            if output == "probabilities":
                return probs
            return self.options.labels(probs[0])[None].astype(np.int64)
        if dtype is None and self.predictor.spec.intensity_method == "dtype" and x.size and x.max() > 1:
            raise ModelInputError(
                "this model normalises intensities by the images' dtype range; pass "
                "params={'input_dtype': 'uint8'} (or 'uint16', ...) with the original pixel values"
            )
        from components.inference.predictor import Predictor

        images = x.astype(dtype) if dtype else x
        if isinstance(self.predictor, Predictor):  # network-size models: batched forward passes
            probs = np.stack(self.predictor.predict_proba_batch(images))
        else:  # patch mode: sliding windows per image (the windows are batched)
            probs = np.stack([self.predictor.predict_proba(img) for img in images])
        if output == "probabilities":
            return probs
        return np.stack([self.options.labels(p) for p in probs]).astype(np.int64)

    def _check_against_training(self, x: np.ndarray, spacing: Any, params: dict[str, Any] | None) -> None:
        """Log inputs far outside the training data; refuse them (HTTP 400) when the request or the
        server is strict.

        Shape: x (N, H, W, C) images or (C, Z, Y, X) one volume.
        """
        if not self.training_data:
            return
        from components.ensembling.input_guard import image_warnings, log_warnings, strict_request
        from components.ensembling.serving import ModelInputError

        if self.training_data["ndim"] == 3:
            warnings = image_warnings("input", self.training_data, x, spacing)
        else:
            warnings = [
                w
                for i, img in enumerate(x)
                for w in image_warnings(f"image {i}", self.training_data, img, None)
            ]
        log_warnings(warnings)
        if warnings and strict_request(params):
            raise ModelInputError("far outside the training data (strict): " + "; ".join(warnings))


mlflow.models.set_model(FoldEnsembleModel())
