"""segflow predict on NIfTI: a prediction keeps its input's header (qform/sform codes and units)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np


class _Threshold:
    """A pyfunc model that labels voxels above the mean as class 1: ``(C, Z, Y, X)`` -> ``(1, Z, Y, X)``."""

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        x = np.asarray(model_input)
        return (x[:1] > x.mean()).astype(np.uint8)


def _model(path: Path) -> str:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    class Threshold(_Threshold, mlflow.pyfunc.PythonModel):
        pass

    example = np.zeros((1, 4, 5, 6), np.float32)
    signature = infer_signature(example, example.astype(np.uint8), params={"spacing": "", "input_dtype": ""})
    mlflow.pyfunc.save_model(str(path), python_model=Threshold(), signature=signature, input_example=example)
    return str(path)


def test_a_nifti_prediction_keeps_the_input_header(tmp_path: Path) -> None:
    """Before: SimpleITK wrote qform/sform codes 1/1 (the input said 0/2) and mm + sec units."""
    from components.ensembling.predict_volumes import predict_volumes

    affine = np.diag([0.9, 0.8, 2.5, 1.0])
    affine[:3, 3] = (5.0, -7.0, 11.0)
    image = nib.Nifti1Image(np.random.default_rng(0).normal(size=(6, 5, 4)).astype(np.float32), affine)
    image.set_qform(affine, code=0)
    image.set_sform(affine, code=2)
    image.header.set_xyzt_units("mm", "msec")
    inputs = tmp_path / "in"
    inputs.mkdir()
    nib.save(image, str(inputs / "case_a.nii.gz"))

    out = tmp_path / "out"
    assert predict_volumes(_model(tmp_path / "model"), inputs, out) == 1
    header = nib.load(str(out / "case_a.nii.gz")).header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (0, 2)
    assert header.get_xyzt_units() == ("mm", "msec")
    np.testing.assert_allclose(nib.load(str(out / "case_a.nii.gz")).affine, affine, atol=1e-5)
