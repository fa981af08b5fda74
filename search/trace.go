package search

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// TraceVersion is the version of the trace format.
const TraceVersion = 1

// Search steps, as entries record them.
const (
	StepBaseline    = "baseline"
	StepAllLowest   = "all-lowest"
	StepSensitivity = "sensitivity"
	StepBisect      = "bisect"
	StepReclaim     = "reclaim" // a fallen-back layer tried at its lowest rung again
	StepMiddle      = "middle"  // a fallen-back layer tried at a middle rung
)

// Trace records every plan a search evaluated. A search given a previous
// trace (Options.Resume) on the same rows reuses its entries instead of
// evaluating those plans again.
type Trace struct {
	Version int `json:"version"`
	// Rows and Fingerprint (sha256 of the labels and the baseline's
	// predictions) identify the rows and model the statistics hold for.
	Rows        int     `json:"rows"`
	Fingerprint string  `json:"fingerprint"`
	Confidence  float64 `json:"confidence"`
	Resamples   int     `json:"resamples"`
	Seed        uint64  `json:"seed"`
	MaxNEDelta  float64 `json:"max_ne_delta_pct"`
	// MaxAUCDrop is absent when there is no AUC budget.
	MaxAUCDrop *float64 `json:"max_auc_drop,omitempty"`
	Objective  string   `json:"objective"`
	Entries    []Entry  `json:"entries"`
}

// Entry is one evaluated plan.
type Entry struct {
	// Step is the search step that asked for the plan; Layer and Rung the
	// layer it was about and the rung tried (sensitivity, reclaim, middle).
	Step  string `json:"step"`
	Layer string `json:"layer,omitempty"`
	Rung  string `json:"rung,omitempty"`
	// Plan holds the layers below fp32 (every other layer is fp32).
	Plan map[string]quantize.LayerPlan `json:"plan"`
	Stats
	Verdict Verdict `json:"verdict"`
	Bytes   int64   `json:"bytes"`
	// LatencyUS is the cost model's predicted time of one batch (FC layers
	// and bags), in microseconds; 0 without a cost model.
	LatencyUS float64 `json:"latency_us,omitempty"`
	Seconds   float64 `json:"seconds"` // time the evaluation took
	// Resumed marks an entry taken from a previous trace, not evaluated again.
	Resumed bool `json:"resumed,omitempty"`
}

// planKey is a plan's canonical JSON (fp32 layers omitted; map keys sorted).
func planKey(layers map[string]quantize.LayerPlan) string {
	m := map[string]quantize.LayerPlan{}
	for k, v := range layers {
		if v.Precision != precision.FP32 {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m) // the rungs' plans: valid precisions, strings and bools
	return string(b)
}

// fingerprint identifies the rows and the baseline's predictions.
func fingerprint(labels, base []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, v := range labels {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	for _, v := range base {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Encode returns the trace as indented JSON.
func (t *Trace) Encode() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(t); err != nil {
		// Only a NaN or Inf figure can fail; write it without the figures'
		// meaning lost: such a trace is a bug to report, not to hide.
		return []byte(fmt.Sprintf("{\"error\": %q}\n", err.Error()))
	}
	return b.Bytes()
}

// Write writes the trace atomically.
func (t *Trace) Write(path string) error { return atomicfile.WriteBytes(path, t.Encode()) }

// TraceMaxBytes caps a trace file. A trace holds one entry per plan
// evaluated, each naming the layers below fp32 (about 70 bytes a layer);
// a search evaluates two to three plans per layer, so a trace grows as the
// square of the layers: some 200 KB for the 37 layers of the MLPerf DLRM,
// 128 MiB for about 800 layers.
const TraceMaxBytes = 128 << 20

var traceOptions = strictjson.Options{Kind: "search trace", Versions: []int{TraceVersion}, MaxBytes: TraceMaxBytes}

// ReadTrace reads a trace file (for Options.Resume), strictly
// (internal/strictjson): duplicate keys, unknown or wrongly cased field
// names, data after the object and unknown versions are errors naming the
// file and the JSON path.
func ReadTrace(path string) (*Trace, error) {
	var t Trace
	if err := strictjson.ReadFile(path, &t, traceOptions); err != nil {
		return nil, err
	}
	return t.check(path)
}

// DecodeTrace decodes and checks trace JSON, as ReadTrace; errors name it
// "search trace".
func DecodeTrace(r io.Reader) (*Trace, error) {
	var t Trace
	if err := strictjson.Read("search trace", r, &t, traceOptions); err != nil {
		return nil, err
	}
	return t.check("search trace")
}

func (t *Trace) check(name string) (*Trace, error) {
	for i, e := range t.Entries {
		for _, v := range []float64{e.DeltaNE.Point, e.DeltaNE.Lo, e.DeltaNE.Hi, e.DeltaAUC.Point, e.DeltaAUC.Lo, e.DeltaAUC.Hi} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: entries[%d]: figure %v is not finite", name, i, v)
			}
		}
	}
	return t, nil
}
