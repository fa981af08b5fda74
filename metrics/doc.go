// Package metrics computes the accuracy figures rq reports for a click model:
// normalized entropy (NE), log loss, AUC, calibration and accuracy, streamed
// over batches with an Accumulator.
//
// Definitions (all in float64):
//   - log loss: mean over examples of -(y log p + (1-y) log(1-p)), with p clipped
//     to [1e-7, 1-1e-7] so a saturated prediction costs a finite amount (the
//     clip torch_peer.py and sklearn-style evaluations use);
//   - NE: log loss divided by the entropy of the mean label (the CTR), so a
//     model that always predicts the CTR has NE 1 and lower is better;
//   - AUC: the exact area under the ROC curve, ties counted as half (average
//     ranks), equal to sklearn's roc_auc_score;
//   - calibration: mean prediction / mean label;
//   - accuracy: fraction of examples where (p >= 0.5) == (y == 1).
//
// An Accumulator runs in constant memory and merges exactly: its sums are
// fixed point and its AUC comes from a histogram of the predictions with bins
// 2^-16 of a value wide, reported with a bound on its distance from the exact
// AUC (Result.AUCErrorBound; 0 when exact). AUC, over a slice, is exact.
package metrics
