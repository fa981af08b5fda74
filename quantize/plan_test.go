package quantize

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/precision"
)

func testNet() *model.Network {
	lin := func(name string, in, out int) *model.Linear {
		return &model.Linear{Name: name, In: in, Out: out, Act: model.ActReLU, Weight: make([]float32, in*out), Bias: make([]float32, out)}
	}
	return &model.Network{
		NumDense: 3,
		Bottom:   []*model.Linear{lin("bot_l.0", 3, 4)},
		Tables: []*model.Table{
			{Name: "emb_l.0", Rows: 5, Dim: 4, Weight: make([]float32, 20)},
			{Name: "emb_l.1", Rows: 6, Dim: 4, Weight: make([]float32, 24)},
		},
		Interaction: model.Dot,
		Top:         []*model.Linear{lin("top_l.0", 7, 1)},
	}
}

func TestPresets(t *testing.T) {
	net := testNet()
	for _, name := range PresetNames() {
		p, err := Preset(name, net)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(p.Layers) != 4 || p.Preset != name {
			t.Errorf("%s: %d layers", name, len(p.Layers))
		}
		// Encode -> decode -> validate is stable.
		q, err := DecodePlan(strings.NewReader(string(p.Encode())))
		if err != nil || q.Validate(net) != nil || string(q.Encode()) != string(p.Encode()) {
			t.Errorf("%s: round trip: %v\n%s", name, err, p.Encode())
		}
	}
	p, _ := Preset("pytorch-dynamic", net)
	if lp := p.Layer("top_l.0"); lp.Weights != PerTensor || lp.Granularity != PerTensor || lp.Activation != Dynamic {
		t.Errorf("pytorch-dynamic FC plan %+v", lp)
	}
	if p.Layer("emb_l.1").Precision != precision.FP32 || p.NeedsRanges() {
		t.Errorf("pytorch-dynamic tables %+v", p.Layer("emb_l.1"))
	}
	if p, _ := Preset("int8", net); !p.NeedsRanges() {
		t.Error("int8 preset does not need ranges")
	}
	if _, err := Preset("int3", net); err == nil || !strings.Contains(err.Error(), "int8-dynamic") {
		t.Errorf("unknown preset: %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	net := testNet()
	cases := []struct {
		json string
		want string
	}{
		{`{"version":1,"layers":{"top_l.9":{"precision":"int8"}}}`, "bot_l.0, emb_l.0, emb_l.1, top_l.0"},
		{`{"version":2,"layers":{}}`, "version 2"},
		{`{"version":1,"layers":{"emb_l.0":{"precision":"bf16"}}}`, "embedding table"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int4"}}}`, "FC layer"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"static","method":"kl"}}}`, "method"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"static","granularity":"row"}}}`, "per tensor"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"fp16","method":"l2"}}}`, "int8 only"},
		{`{"version":1,"layers":{"emb_l.0":{"precision":"int8","greedy":true}}}`, "int4 and int2"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"sometimes"}}}`, "activation must be"},
	}
	for _, c := range cases {
		p, err := DecodePlan(strings.NewReader(c.json))
		if err == nil {
			err = p.Validate(net)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.json, err, c.want)
		}
	}
	if _, err := DecodePlan(strings.NewReader(`{"version":1,"layers":{},"typo":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
	// Defaults are filled for a terse int8 layer.
	p, _ := DecodePlan(strings.NewReader(`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"static"}}}`))
	if err := p.Validate(net); err != nil {
		t.Fatal(err)
	}
	if lp := p.Layer("bot_l.0"); lp.Method != "l2" || lp.Weights != PerChannel || lp.Granularity != PerTensor {
		t.Errorf("defaults: %+v", lp)
	}
	if p.Layer("top_l.0").Precision != precision.FP32 {
		t.Error("unnamed layer is not fp32")
	}
}

// An unknown precision in a plan is refused while decoding, by
// precision.Parse, with the one error type (*precision.UnknownError),
// located at its layer; so is an unknown activation. ReadPlan and
// DecodePlan say the same, the file's name or "plan" first.
func TestPlanUnknownPrecision(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		doc, want string
		unknown   string // the *UnknownError's name; "" for an activation
	}{
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int9"}}}`, `layers["bot_l.0"].precision: unknown precision "int9"; precisions: fp32, fp16, bf16, int8, int4, int2`, "int9"},
		{`{"version":1,"layers":{"emb_l.0":{"precision":"int4"},"emb_l.1":{"precision":"INT4"}}}`, `layers["emb_l.1"].precision: unknown precision "INT4"`, "INT4"},
		{`{"version":1,"layers":{"top_l.0":{"precision":"int8-rowwise"}}}`, `layers["top_l.0"].precision: unknown precision "int8-rowwise"`, "int8-rowwise"},
		{`{"version":1,"layers":{"bot_l.0":{"precision":"int8","activation":"sometimes"}}}`, `layers["bot_l.0"].activation: activation must be "static" or "dynamic", not "sometimes"`, ""},
	}
	for i, c := range cases {
		path := filepath.Join(dir, fmt.Sprintf("p%d.json", i))
		if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, ferr := ReadPlan(path)
		_, derr := DecodePlan(strings.NewReader(c.doc))
		for who, err := range map[string]error{path: ferr, "plan": derr} {
			if err == nil || !strings.HasPrefix(err.Error(), who+": "+c.want) {
				t.Errorf("%s: error\n %v\nwant\n %s: %s", c.doc, err, who, c.want)
			}
			var u *precision.UnknownError
			if got := errors.As(err, &u); got != (c.unknown != "") || (got && u.Name != c.unknown) {
				t.Errorf("%s: %v is not an *UnknownError for %q", c.doc, err, c.unknown)
			}
		}
	}
}

// Plan JSON is the vocabulary's names, byte for byte as before the
// precisions were typed.
func TestPlanEncodeNames(t *testing.T) {
	p := &Plan{Version: PlanVersion, Layers: map[string]LayerPlan{
		"a": {Precision: precision.Int8, Activation: Static, Granularity: PerTensor, Weights: PerChannel, Method: "l2", WeightRange: NarrowRange},
		"b": {Precision: precision.Int4, Greedy: true},
		"c": {Precision: precision.BF16},
		"d": {Precision: precision.Int8, Activation: Dynamic},
	}}
	want := `{
  "version": 1,
  "layers": {
    "a": {
      "precision": "int8",
      "activation": "static",
      "granularity": "tensor",
      "weights": "channel",
      "method": "l2",
      "weight_range": "narrow"
    },
    "b": {
      "precision": "int4",
      "greedy": true
    },
    "c": {
      "precision": "bf16"
    },
    "d": {
      "precision": "int8",
      "activation": "dynamic"
    }
  }
}
`
	if got := string(p.Encode()); got != want {
		t.Errorf("Encode:\n%s\nwant\n%s", got, want)
	}
	back, err := DecodePlan(strings.NewReader(want))
	if err != nil || !reflect.DeepEqual(back.Layers, p.Layers) {
		t.Errorf("decoded back: %+v, %v", back, err)
	}
}

// The plan reader is strict: each of these documents was accepted before
// (encoding/json takes the last of two keys and matches field names
// ignoring case), and each now fails with the file, the JSON path and what
// was wrong.
func TestReadPlanStrict(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, doc, want string
	}{
		{"duplicate precision", `{"version":1,"layers":{"top_l.0":{"precision":"int8","precision":"fp32"}}}`,
			`layers["top_l.0"].precision: duplicate key`},
		{"duplicate layer", `{"version":1,"layers":{"top_l.0":{"precision":"int8"},"top_l.0":{"precision":"fp32"}}}`,
			`layers["top_l.0"]: duplicate key`},
		{"duplicate layers", `{"version":1,"layers":{"top_l.0":{"precision":"int8"}},"layers":{}}`, `layers: duplicate key`},
		{"case-folded field", `{"version":1,"layers":{"top_l.0":{"Precision":"int8"}}}`,
			`layers["top_l.0"].Precision: unknown key: field names are case-sensitive, did you mean "precision"?`},
		{"case-folded top field", `{"VERSION":1,"version":1,"layers":{}}`, `VERSION: unknown key: field names are case-sensitive, did you mean "version"?`},
		{"unknown nested field", `{"version":1,"layers":{"bot_l.0":{"precision":"int8","methd":"l2"}}}`,
			`layers["bot_l.0"].methd: unknown key (want one of activation, cold_precision, granularity, greedy, hot_precision, hot_share, method, precision, reduce_range, weight_range, weights)`},
		{"trailing data", `{"version":1,"layers":{}} {"version":1,"layers":{}}`, `line 1, column 27: data after the end of the JSON object`},
		{"version 2", `{"version":2,"layers":{}}`, `version 2: this rq reads plan version 1`},
		{"no version", `{"layers":{}}`, `no "version"`},
		{"type", `{"version":1,"layers":{"bot_l.0":{"precision":"int8","reduce_range":"yes"}}}`,
			`layers["bot_l.0"].reduce_range: got a JSON string, want true or false`},
	}
	for _, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadPlan(p)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if want := p + ": " + c.want; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error\n %v\nwant\n %s", c.name, err, want)
		}
	}
	// Size cap: a plan padded with whitespace past PlanMaxBytes.
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte(`{"version":1,"layers":{}}`+strings.Repeat(" ", PlanMaxBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPlan(big); err == nil || !strings.Contains(err.Error(), "the limit for a file of kind \"plan\"") {
		t.Errorf("oversized plan: %v", err)
	}
	// What rq writes reads back.
	pl, _ := Preset("int8-int4", testNet())
	good := filepath.Join(dir, "good.json")
	if err := pl.Write(good); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPlan(good)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Encode(), pl.Encode()) {
		t.Error("a written plan reads back different")
	}
}

// checkedRanges is a RangeSource that knows its layers, as calibrate.Ranges
// does.
type checkedRanges struct{ layers []string }

func (c *checkedRanges) Range(layer, method string) (float32, float32, error) { return 0, 1, nil }

func (c *checkedRanges) CheckNetwork(net *model.Network) error {
	for _, n := range c.layers {
		if !slices.Contains(net.LayerNames(), n) {
			return errors.New("ranges.json: layer " + strconv.Quote(n) + ": is not a Linear layer of the model")
		}
	}
	return nil
}

// Ranges naming a layer the model does not have are refused by Apply (they
// were ignored: only the layers the plan asked for were looked up).
func TestApplyRefusesUnknownRangeLayers(t *testing.T) {
	net := testNet()
	plan, err := Preset("int8", net)
	if err != nil {
		t.Fatal(err)
	}
	good := &checkedRanges{layers: []string{"bot_l.0", "top_l.0"}}
	if _, err := Apply(net, plan, good); err != nil {
		t.Fatal(err)
	}
	bad := &checkedRanges{layers: []string{"bot_l.0", "top_l.0", "top_l.9"}}
	for _, apply := range []func(*model.Network, *Plan, RangeSource) (*model.Network, error){Apply, ApplyFC} {
		if _, err := apply(net, plan, bad); err == nil || !strings.Contains(err.Error(), `layer "top_l.9": is not a Linear layer`) {
			t.Errorf("ranges with an extra layer: %v", err)
		}
	}
	// A nil *checkedRanges in the interface is no ranges, not a panic.
	var none *checkedRanges
	dyn, _ := Preset("int8-dynamic", net)
	if _, err := Apply(net, dyn, none); err != nil {
		t.Errorf("typed nil ranges: %v", err)
	}
}
