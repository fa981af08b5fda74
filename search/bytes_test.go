package search

import (
	"path/filepath"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// TestLayerBytesMatchNetwork: the search prices each FC layer at each
// weight-only precision exactly as the quantized layer counts itself, on
// TorchRec's DLRM_DCN, whose cross network's V kernels have no bias.
func TestLayerBytesMatchNetwork(t *testing.T) {
	m, err := modelio.Load(testshared.Path(t, filepath.Join("criteo-torchrec", "dcn.pt")))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	byName := map[string]Layer{}
	for _, l := range NetworkLayers(m.Net) {
		byName[l.Name] = l
	}
	plans := []quantize.LayerPlan{
		{Precision: precision.FP32},
		{Precision: precision.FP16},
		{Precision: precision.BF16},
		{Precision: precision.Int8, Activation: quantize.Dynamic, Granularity: quantize.PerRow, Weights: quantize.PerChannel},
		{Precision: precision.Int8, Activation: quantize.Dynamic, Granularity: quantize.PerTensor, Weights: quantize.PerTensor},
	}
	noBias := 0
	for l := range m.Net.Linears() {
		if len(l.Bias) == 0 {
			noBias++
		}
		for _, lp := range plans {
			q, err := quantize.QuantizeLinear(l, lp, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", l.Name, lp.Precision, err)
			}
			if got, want := byName[l.Name].Bytes(lp), q.Bytes(); got != want {
				t.Errorf("%s at %s: priced %d bytes, the quantized layer has %d", l.Name, lp.Precision, got, want)
			}
		}
	}
	if noBias == 0 {
		t.Fatal("no layer without a bias: the test proves nothing")
	}
}
