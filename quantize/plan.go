package quantize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

// PlanVersion is the version of the plan JSON format this package writes.
const PlanVersion = 1

// Activation quantization modes for int8 FC layers, as plans name them.
const (
	Static  = precision.Static  // per-tensor scale and zero point from calibration
	Dynamic = precision.Dynamic // computed from each batch at run time
)

// Weight ranges of int8 FC layers.
const (
	NarrowRange = "narrow" // [-127, 127], scale max|w|/127
	FullRange   = "full"   // [-128, 127], scale max|w|/127.5 (PyTorch's observer)
)

// Granularities.
const (
	PerTensor  = "tensor"
	PerRow     = "row"     // dynamic activations: one scale per example
	PerChannel = "channel" // weights: one scale per output channel
)

// LayerPlan is one layer's precision and, for int8 FC layers, how.
type LayerPlan struct {
	// Precision decodes through precision.Parse: an unknown name is a
	// *precision.UnknownError, located at its layer by DecodePlan.
	Precision precision.Precision `json:"precision"`
	// int8 FC layers only:
	Activation  precision.Activation `json:"activation,omitempty"`   // static | dynamic
	Granularity string               `json:"granularity,omitempty"`  // activations: tensor | row (dynamic only)
	Weights     string               `json:"weights,omitempty"`      // channel | tensor
	Method      string               `json:"method,omitempty"`       // static: minmax | percentile | l2 | entropy
	ReduceRange bool                 `json:"reduce_range,omitempty"` // 7-bit activations (0..127), as PyTorch's dynamic Linear uses
	// WeightRange: "narrow" (default: q in [-127, 127], scale max|w|/127,
	// so -w quantizes to -q) or "full" (q in [-128, 127], scale
	// max|w|/127.5: PyTorch's per_tensor_symmetric weight observer).
	WeightRange string `json:"weight_range,omitempty"`
	// n-bit tables only: greedy per-row range shrinking (PyTorch's optimized_qparams).
	Greedy bool `json:"greedy,omitempty"`
	// mixed tables only (precision "mixed", see mixed.go): the precision
	// of the hot rows and of the others (any table precision but mixed),
	// and the share of the table's rows kept hot (0 < share <= 1), the
	// hottest by the calibration rows' lookups (rq calibrate's ranges.json).
	HotPrecision  precision.Precision `json:"hot_precision,omitempty"`
	ColdPrecision precision.Precision `json:"cold_precision,omitempty"`
	HotShare      float64             `json:"hot_share,omitempty"`
}

// Plan maps layer names to their precisions. Layers it does not name stay fp32.
type Plan struct {
	Version int                  `json:"version"`
	Preset  string               `json:"preset,omitempty"`
	Layers  map[string]LayerPlan `json:"layers"`
}

var methods = []string{"minmax", "percentile", "l2", "entropy"}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// Layer returns the plan for a layer, fp32 when the plan does not name it.
func (p *Plan) Layer(name string) LayerPlan {
	if lp, ok := p.Layers[name]; ok {
		return lp
	}
	return LayerPlan{Precision: precision.FP32}
}

// named is p's name for an error message: "" for a plan entry that gave
// none (the zero value).
func named(p precision.Precision) string {
	if p == 0 {
		return ""
	}
	return p.String()
}

// Validate checks the plan against a network: every named layer exists
// (else the error lists the real ones) and has a precision its kind allows,
// with consistent int8 options. It fills defaults for omitted int8 options.
func (p *Plan) Validate(net *model.Network) error {
	if p.Version != PlanVersion {
		return fmt.Errorf("plan version %d, rq reads version %d", p.Version, PlanVersion)
	}
	kinds := map[string]string{}
	for l := range net.Layers() {
		kinds[l.Name()] = "fc"
		if l.Table != nil {
			kinds[l.Name()] = "table"
		}
	}
	names := make([]string, 0, len(p.Layers))
	for n := range p.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		lp := p.Layers[name]
		kind, ok := kinds[name]
		if !ok {
			return fmt.Errorf("plan names layer %q, which the model does not have; its layers are %s", name, strings.Join(net.LayerNames(), ", "))
		}
		if err := checkMixed(name, kind, lp); err != nil {
			return err
		}
		if kind == "table" {
			if !lp.Precision.ForTable() {
				return fmt.Errorf("plan: %s is an embedding table; its precision must be one of %s, not %q", name, precision.Join(precision.Tables()), named(lp.Precision))
			}
			if lp.Activation != 0 || lp.Weights != "" || lp.Method != "" || lp.Granularity != "" || lp.ReduceRange || lp.WeightRange != "" {
				return fmt.Errorf("plan: %s is an embedding table; activation, weights, method, granularity, reduce_range and weight_range apply to FC layers only", name)
			}
			if lp.Greedy && lp.Precision != precision.Int4 && lp.Precision != precision.Int2 {
				return fmt.Errorf("plan: %s: greedy range search applies to int4 and int2 tables only", name)
			}
			continue
		}
		if !lp.Precision.ForFC() {
			return fmt.Errorf("plan: %s is an FC layer; its precision must be one of %s, not %q", name, precision.Join(precision.FC()), named(lp.Precision))
		}
		if lp.Greedy {
			return fmt.Errorf("plan: %s: greedy applies to embedding tables only", name)
		}
		if lp.Precision.IsMX() {
			// MX weights; activations bf16, or "dynamic": rounded to the
			// layer's MX format per example (blocks of 32 along the input).
			if lp.Activation != 0 && lp.Activation != Dynamic {
				return fmt.Errorf("plan: %s is %s; its activations are bf16 or %q (rounded to %s per example), not %q", name, lp.Precision, Dynamic, lp.Precision, lp.Activation)
			}
			if lp.Weights != "" || lp.Method != "" || lp.Granularity != "" || lp.ReduceRange || lp.WeightRange != "" {
				return fmt.Errorf("plan: %s is %s; weights, method, granularity, reduce_range and weight_range apply to int8 only", name, lp.Precision)
			}
			continue
		}
		if lp.Precision != precision.Int8 {
			if lp.Activation != 0 || lp.Weights != "" || lp.Method != "" || lp.Granularity != "" || lp.ReduceRange || lp.WeightRange != "" {
				return fmt.Errorf("plan: %s is %s; activation, weights, method, granularity, reduce_range and weight_range apply to int8 only", name, lp.Precision)
			}
			continue
		}
		if lp.Activation == 0 {
			lp.Activation = Dynamic
		}
		if lp.Weights == "" {
			lp.Weights = PerChannel
		}
		switch lp.Activation {
		case Dynamic:
			if lp.Granularity == "" {
				lp.Granularity = PerRow
			}
			if lp.Granularity != PerRow && lp.Granularity != PerTensor {
				return fmt.Errorf("plan: %s: dynamic activation granularity must be %q or %q, not %q", name, PerRow, PerTensor, lp.Granularity)
			}
			if lp.Method != "" {
				return fmt.Errorf("plan: %s: a range method applies to static activations only", name)
			}
		case Static:
			if lp.Granularity == "" {
				lp.Granularity = PerTensor
			}
			if lp.Granularity != PerTensor {
				return fmt.Errorf("plan: %s: static activations are per tensor, not %q", name, lp.Granularity)
			}
			if lp.Method == "" {
				lp.Method = "l2"
			}
			if !oneOf(lp.Method, methods) {
				return fmt.Errorf("plan: %s: method must be one of %s, not %q", name, strings.Join(methods, ", "), lp.Method)
			}
		default:
			return fmt.Errorf("plan: %s: %w", name, &precision.ActivationError{Name: lp.Activation.String()})
		}
		if lp.WeightRange == "" {
			lp.WeightRange = NarrowRange
		}
		if lp.WeightRange != NarrowRange && lp.WeightRange != FullRange {
			return fmt.Errorf("plan: %s: weight_range must be %q or %q, not %q", name, NarrowRange, FullRange, lp.WeightRange)
		}
		if lp.Weights != PerChannel && lp.Weights != PerTensor {
			return fmt.Errorf("plan: %s: weights must be %q or %q, not %q", name, PerChannel, PerTensor, lp.Weights)
		}
		p.Layers[name] = lp
	}
	return nil
}

// networkChecker is a RangeSource that can tell whether it was made for a
// network's layers (calibrate.Ranges: CheckNetwork).
type networkChecker interface {
	CheckNetwork(net *model.Network) error
}

// CheckRanges verifies, when ranges can tell, that they describe exactly
// net's FC inputs: a layer the network does not have (an edited file, or
// ranges of another model that kept its sha256) is an error naming it,
// rather than being ignored.
func CheckRanges(net *model.Network, ranges RangeSource) error {
	c, ok := ranges.(networkChecker)
	if !ok {
		return nil
	}
	if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return c.CheckNetwork(net)
}

// NeedsRanges reports whether some layer uses static activations.
func (p *Plan) NeedsRanges() bool {
	for _, lp := range p.Layers {
		if lp.Precision == precision.Int8 && lp.Activation == Static {
			return true
		}
	}
	return false
}

// Presets are the built-in plans, by name.
var Presets = map[string]string{
	"fp16":                 "FC layers fp16 (fp16 weights, fp32 math), tables fp16",
	"bf16":                 "FC layers bf16, tables fp16",
	"int8-dynamic":         "FC layers int8 (per-channel weights, activations per example at run time), tables 8-bit row-wise",
	"int8":                 "FC layers int8 (per-channel weights, static per-tensor activations from calibration, l2), tables 8-bit row-wise",
	"int8-int4":            "FC layers int8 static as in int8, tables 4-bit row-wise",
	"pytorch-dynamic":      "PyTorch's quantize_dynamic recipe: FC int8 with per-tensor weights and per-batch activations, tables fp32",
	"pytorch-dynamic-int4": "pytorch-dynamic with 4-bit row-wise tables (PyTorch's int8 + embedding_bag_4bit_prepack)",
}

// PresetNames lists the presets in a stable order.
func PresetNames() []string {
	n := make([]string, 0, len(Presets))
	for k := range Presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Preset builds a named preset's plan for a network.
func Preset(name string, net *model.Network) (*Plan, error) {
	var fc, table LayerPlan
	switch name {
	case "fp16":
		fc, table = LayerPlan{Precision: precision.FP16}, LayerPlan{Precision: precision.FP16}
	case "bf16":
		fc, table = LayerPlan{Precision: precision.BF16}, LayerPlan{Precision: precision.FP16}
	case "int8-dynamic":
		fc = LayerPlan{Precision: precision.Int8, Activation: Dynamic, Granularity: PerRow, Weights: PerChannel, WeightRange: NarrowRange}
		table = LayerPlan{Precision: precision.Int8}
	case "int8":
		fc = LayerPlan{Precision: precision.Int8, Activation: Static, Granularity: PerTensor, Weights: PerChannel, Method: "l2", WeightRange: NarrowRange}
		table = LayerPlan{Precision: precision.Int8}
	case "int8-int4":
		fc = LayerPlan{Precision: precision.Int8, Activation: Static, Granularity: PerTensor, Weights: PerChannel, Method: "l2", WeightRange: NarrowRange}
		table = LayerPlan{Precision: precision.Int4}
	case "pytorch-dynamic", "pytorch-dynamic-int4":
		// torch.ao.quantization.quantize_dynamic with the default qconfig, as
		// PyTorch 1.13 runs it: per_tensor_symmetric MinMaxObserver weights
		// (scale max|w|/127.5, q in [-128, 127]) and activations quantized
		// per batch with reduce_range (qmax 127).
		fc = LayerPlan{Precision: precision.Int8, Activation: Dynamic, Granularity: PerTensor, Weights: PerTensor, ReduceRange: true, WeightRange: FullRange}
		table = LayerPlan{Precision: precision.FP32}
		if name == "pytorch-dynamic-int4" {
			table = LayerPlan{Precision: precision.Int4}
		}
	default:
		return nil, fmt.Errorf("unknown preset %q; presets: %s", name, strings.Join(PresetNames(), ", "))
	}
	p := &Plan{Version: PlanVersion, Preset: name, Layers: map[string]LayerPlan{}}
	for l := range net.Layers() {
		switch {
		case l.Table != nil:
			p.Layers[l.Name()] = table
		case l.Part == model.PartInteraction && strings.HasPrefix(name, "pytorch-dynamic"):
			// quantize_dynamic swaps nn.Linear modules only; DCN's cross
			// kernels are Parameters, so PyTorch leaves them fp32.
			p.Layers[l.Name()] = LayerPlan{Precision: precision.FP32}
		default:
			p.Layers[l.Name()] = fc
		}
	}
	return p, p.Validate(net)
}

// PlanMaxBytes caps a plan file. A plan names each layer in about 150
// bytes, so this is room for some 100,000 layers; rq's plans for the
// MLPerf DLRM (34 layers) are under 6 KB.
const PlanMaxBytes = 16 << 20

var planOptions = strictjson.Options{Kind: "plan", Versions: []int{PlanVersion}, MaxBytes: PlanMaxBytes}

// ReadPlan reads and decodes a plan file (it is validated against a
// network by Validate). The JSON is read strictly (internal/strictjson): a
// key given twice, an unknown or wrongly cased field name, data after the
// object or an unknown version is an error naming the file and the JSON
// path, so a typo or a second "precision" is never silently ignored.
func ReadPlan(path string) (*Plan, error) {
	data, err := strictjson.ReadBytes(path, planOptions)
	if err != nil {
		return nil, err
	}
	return decodePlan(path, data)
}

// DecodePlan decodes plan JSON, as ReadPlan; errors name it "plan".
func DecodePlan(r io.Reader) (*Plan, error) {
	var p Plan
	var read bytes.Buffer // what Read took, for locate
	if err := strictjson.Read("plan", io.TeeReader(r, &read), &p, planOptions); err != nil {
		return nil, locate(read.Bytes(), err)
	}
	return p.init(), nil
}

func decodePlan(name string, data []byte) (*Plan, error) {
	var p Plan
	if err := strictjson.Decode(name, data, &p, planOptions); err != nil {
		return nil, locate(data, err)
	}
	return p.init(), nil
}

// locate gives a refused precision or activation its JSON path
// (layers["bot_l.0"].precision): encoding/json returns the error of a
// value that decodes itself (precision.Parse's *UnknownError) without
// saying where it was, and a plan error names its layer.
func locate(data []byte, err error) error {
	var se *strictjson.Error
	if !errors.As(err, &se) || len(se.Path) > 0 {
		return err
	}
	var unknown *precision.UnknownError
	var act *precision.ActivationError
	field, bad := "", ""
	switch {
	case errors.As(err, &unknown):
		field, bad = "precision", unknown.Name
		field = mixedField(data, field, bad)
	case errors.As(err, &act):
		field, bad = "activation", act.Name
	default:
		return err
	}
	var loose struct {
		Layers map[string]map[string]any `json:"layers"`
	}
	if json.Unmarshal(data, &loose) != nil {
		return err
	}
	names := make([]string, 0, len(loose.Layers))
	for n := range loose.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if v, ok := loose.Layers[n][field].(string); ok && v == bad {
			se.Path = strictjson.Path{{Name: "layers"}, {Name: n, IsKey: true}, {Name: field}}
			break
		}
	}
	return err
}

func (p *Plan) init() *Plan {
	if p.Layers == nil {
		p.Layers = map[string]LayerPlan{}
	}
	return p
}

// Encode returns the plan as indented JSON with sorted keys (deterministic).
// It panics on a layer without a valid precision (the zero value): such a
// plan never passes Validate, and rq encodes only validated plans, so
// writing it as anything would hide a bug.
func (p *Plan) Encode() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil { // maps encode with sorted keys
		panic(fmt.Sprintf("quantize: encoding an invalid plan: %v", err))
	}
	return b.Bytes()
}

// Write writes the plan atomically.
func (p *Plan) Write(path string) error {
	return atomicfile.WriteBytes(path, p.Encode())
}
