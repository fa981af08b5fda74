// Package calibrate chooses quantization ranges for the inputs of a DLRM's
// fully connected (Linear) layers: it runs the fp32 model over calibration
// rows, keeps a histogram of every Linear layer's input, and derives a
// [lo, hi] range per method from each histogram. The result is the
// ranges.json document (Ranges) that quantization reads.
//
// # Histograms
//
// A Histogram has a fixed number of bins (DefaultBins, 2048, as PyTorch's
// HistogramObserver) of width 2^k, anchored at 0: bin i holds the values
// with floor(x/2^k) == i. When a value falls outside, the width doubles as
// often as needed, each doubling merging bin pairs exactly (bin i becomes
// bin floor(i/2)), and the window slides. The window always holds 0 and the
// data, and uses the finest width that fits them, so a histogram depends on
// the set of values only: observing A then B, B then A, or merging the
// histograms of A and of B give identical histograms, bit for bit. Memory
// is O(bins) whatever the data; Observe does not allocate. Min, max, the
// count, the exact zeros and NaN/±Inf (kept out of the bins) are tracked
// apart.
//
// # Range methods
//
// All ranges are for an asymmetric quantizer with a given number of levels
// (256 for u8, 128 with reduce_range), contain 0, stay within the data's
// [min, max] (widened to 0), and start at 0 for inputs that follow a ReLU.
//   - minmax: [min, max].
//   - percentile (p, default 99.99): the (100-p)% and p% quantiles, reading
//     the histogram as uniform within bins and the zeros as a point mass.
//   - l2: the range minimizing the expected squared quantization error of
//     the histogram read the same way: clipping error (x-bound)² beyond the
//     range, Δ²/12 inside, exact x² for bins within half a step of 0 (the
//     grid is pinned there), nothing for exact zeros. The search is
//     exhaustive over bin-edge pairs, O(1) per pair through prefix sums, as
//     PyTorch's HistogramObserver and Caffe2 DNNLOWP's l2 intend (PyTorch
//     searches greedily and may stop in a local minimum).
//   - entropy: the TensorRT / MXNet KL-divergence minimization, with the
//     levels aligned to the quantizer's grid (see dist.kl); two-sided
//     inputs alternate between the two ends. It clips much harder than l2
//     on sharply peaked distributions.
//
// The default method is l2: on the criteo-18k reference model its ranges
// quantize every layer's input with a lower mean squared error than
// minmax's, and within a few percent of the best method's.
//
// # ReLU inputs
//
// Inputs lists the Linear layers in network order and says which inputs
// follow a ReLU, from the network itself: a layer's input does when the
// previous layer of the same MLP ends in a ReLU. The first bottom layer
// (dense features) and the first top layer (interaction output) are
// two-sided.
//
// # Row access counts
//
// Run also counts how often the calibration rows look up each row of each
// embedding table (every id of every bag once; per-sample weights
// ignored), for mixed-precision tables that keep their hot rows at a
// higher precision. A table of at most ExactMaxRows (2^20) rows is
// counted exactly, a uint32 per row allocated at its first lookup (4 MiB
// at most); a larger one by a Space-Saving summary of MaxHot (65,536)
// counters (1.5 MiB), whose counts over-estimate by at most the smallest
// counter. Counting happens on the caller's goroutine in row order, so
// the result is the same for any thread count or batch size. The
// document keeps each table's MaxHot hottest rows (TableAccess): an exact
// table with more rows seen keeps those above the (MaxHot+1)-th count,
// which becomes its error bound. Merge adds exact counts and merges
// summaries by the mergeable-summaries rule (see mergeAccess): merged
// exact shards whose lists are complete give the unsharded counts, and a
// merged summary stays within Lookups/MaxHot. Ranges.TableAccess and
// TableAccess.Hot hand out the hottest rows.
//
// # ranges.json
//
// Version 3, written by Ranges.Write atomically, keys in a fixed order,
// layers sorted by name, numbers in their shortest round-tripping form, so
// writing what Read returns gives the same bytes:
//
//	{
//	  "version": 3,
//	  "model_sha256": "<sha256 of the model file>",
//	  "rows": "0:2000",
//	  "data": "dlrm-processed.npz",
//	  "method": "l2",            // the default method
//	  "percentile": 99.99,       // p of "percentile"
//	  "levels": 256,             // the levels the ranges were chosen for
//	  "digest": "sha256:<hex>",  // of the document without this line
//	  "layers": {
//	    "bot_l.0": {
//	      "follows_relu": false,
//	      "count": 26000,        // finite values observed
//	      "zeros": 9181,         // of which exactly 0
//	      "nonfinite": 0, "nan": 0, "posinf": 0, "neginf": 0,
//	      "min": 0, "max": 13.830612,
//	      "histogram": {"lo": 0, "hi": 16, "bins": [...]},
//	      "ranges": {"minmax": [lo, hi], "percentile": [...], "l2": [...], "entropy": [...]},
//	      "weight": {"absmax": [...], "min": [...], "max": [...]}   // per output channel
//	    }, ...
//	  },
//	  "tables": {                // row access counts, tables sorted by name
//	    "emb_l.0": {
//	      "rows": 1460,          // the table's rows
//	      "lookups": 15429,      // ids counted
//	      "exact": true,         // error_bound is 0: every row seen is listed, exactly
//	      "error_bound": 0,      // else the most a listed count over-counts, and the
//	                             // most an unlisted row was seen
//	      "hot": [[row, count], ...]  // count descending, then row; at most 65,536
//	    }, ...
//	  }
//	}
//
// Read decodes strictly (internal/strictjson: no key twice, no unknown or
// wrongly cased key, nothing after the object) and validates everything
// (version, required fields, finite numbers, lo <= 0 <= hi, each method's
// range within the histogram's observed [min(0, min), max(0, max)] widened
// by one bin width, histogram shape and consistency with count, min and
// max, the digest; for tables: rows within the table, listed once, in
// order, at most MaxHot, counts consistent with lookups and the bound)
// and names the file and layer or table (its JSON path) at fault.
//
// The digest (since version 2; it covers "tables") is the sha256 of the document's canonical
// encoding without the digest line; Read recomputes it, and a mismatch is
// "edited or corrupted: digest mismatch". It is required in calibration
// shards (shard_count present: intermediates of rq merge); a complete
// ranges.json may leave it out, so a range tuned by hand can be used once
// its digest line is deleted (the range checks above still apply). Version
// 2 documents (no "tables") and version 1 documents (no digest) are still
// read, except version 1 shards, which are refused
// with a request to re-run rq calibrate --shard. docs/sharding.md says
// what the digest does and does not protect against. Ranges.Check refuses
// ranges made for another model file; CheckNetwork (run by quantize.Apply)
// refuses ranges naming a layer the model does not have; Merge combines
// calibrations of one model over different rows exactly.
package calibrate
