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
// AUC needs every (prediction, label) pair, so an Accumulator keeps one
// float32 and one bit per example: 5 bytes, about 100 MB per 20 million rows.
package metrics
