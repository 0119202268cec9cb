"""Reference values for crossomics-metrics' `prediction::calibration` test: sklearn's
calibration_curve on a small hand-made input (run with the fixtures venv,
scripts/requirements-fixtures.txt)."""
import numpy as np
from sklearn.calibration import calibration_curve

truth = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 1])
pred = np.array([0.05, 0.15, 0.15, 0.35, 0.45, 0.55, 0.85, 0.95, 1.0, 0.72], dtype=np.float32)
prob_true, prob_pred = calibration_curve(truth, pred, n_bins=4, strategy="uniform")
print("prob_true", prob_true.tolist())
print("prob_pred", prob_pred.tolist())
