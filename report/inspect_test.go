package report

import (
	"bytes"
	"testing"
)

// TestInspectTable pins rq inspect's table: the summary lines (bottom MLP,
// tables, interaction, top MLP widths), the metadata line with long values
// cut, and a row per layer in the order given.
func TestInspectTable(t *testing.T) {
	in := &Inspect{File: "m.safetensors", Format: "safetensors (rq quantized)", Scheme: "facebookresearch/dlrm", Interaction: "dot",
		DenseInputs: 13, Tables: 1, BottomMLP: []int{13, 4}, TopMLP: []int{5, 1}, Params: 74, Bytes: 120, FP32Bytes: 296,
		Meta: map[string]any{"rq.version": "1", "format": "rq-quantized", "rq.plan": "0123456789012345678901234567890123456789xyz"},
		Layers: []Layer{
			{Name: "bot_l.0", Kind: "linear", Precision: "int8-static", Shape: []int{4, 13}, DTypes: []string{"F32", "I32", "I8"}, Activation: "relu", Params: 56, Bytes: 80, FP32Bytes: 224},
			{Name: "emb_l.0", Kind: "embedding", Precision: "int4-rowwise", Shape: []int{3, 4}, DTypes: []string{"U8"}, Params: 12, Bytes: 12, FP32Bytes: 48},
			{Name: "top_l.0", Kind: "linear", Precision: "fp32", Shape: []int{1, 5}, DTypes: []string{"F32"}, Activation: "sigmoid", Params: 6, Bytes: 28, FP32Bytes: 24},
		}}
	var buf bytes.Buffer
	if err := InspectTable(&buf, in); err != nil {
		t.Fatal(err)
	}
	want := `m.safetensors: safetensors (rq quantized), facebookresearch/dlrm naming
network: 13 dense -> bottom MLP 13-4; 1 embedding tables; interaction dot; top MLP 5-1
parameters: 74, 120 B (fp32: 296 B)
metadata: format=rq-quantized rq.plan=0123456789012345678901234567890123456... rq.version=1
┌─────────┬───────────┬──────────────┬────────┬────────────┬────────────┬────────┬───────┬─────────┐
│ layer   │ kind      │ precision    │ shape  │ dtype      │ activation │ params │ bytes │ of fp32 │
├─────────┼───────────┼──────────────┼────────┼────────────┼────────────┼────────┼───────┼─────────┤
│ bot_l.0 │ linear    │ int8-static  │ [4 13] │ F32,I32,I8 │ relu       │ 56     │ 80 B  │ 35.7%   │
│ emb_l.0 │ embedding │ int4-rowwise │ [3 4]  │ U8         │            │ 12     │ 12 B  │ 25.0%   │
│ top_l.0 │ linear    │ fp32         │ [1 5]  │ F32        │ sigmoid    │ 6      │ 28 B  │ 116.7%  │
└─────────┴───────────┴──────────────┴────────┴────────────┴────────────┴────────┴───────┴─────────┘
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}
