package cmd

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"

	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/precision"
)

// TestInspectTorchRec: rq inspect reads TorchRec's DLRM and DLRM_DCN (both
// file formats) and shows the family, the interaction and the cross layers
// between the tables and the over arch.
func TestInspectTorchRec(t *testing.T) {
	cases := []struct {
		file  string
		wants []string
	}{
		{"dlrm.safetensors", []string{"torchrec DLRM naming", "interaction dot-triu", "top MLP 367-256-128-1", "over_arch.model.1"}},
		{"dcn.pt", []string{"torchrec DLRM_DCN naming", "interaction dcn", "top MLP 432-256-128-1", "inter_arch.crossnet.V_kernels.0", "inter_arch.crossnet.W_kernels.2"}},
		{"multi-hot/dcn.safetensors", []string{"torchrec DLRM_DCN naming", "inter_arch.crossnet.V_kernels.1"}},
	}
	for _, c := range cases {
		out, stderr, code := rq(t, "inspect", testshared.Path(t, filepath.Join("criteo-torchrec", c.file)))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.file, code, stderr)
		}
		for _, w := range c.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not mention %q:\n%s", c.file, w, out)
			}
		}
		// The cross layers come after the last table and before the over arch.
		if i, j := strings.LastIndex(out, "t_cat_25"), strings.Index(out, "inter_arch.crossnet"); j >= 0 && (j < i || j > strings.Index(out, "over_arch.model.0")) {
			t.Errorf("%s: cross layers out of place:\n%s", c.file, out)
		}
	}
}

// TestInspectCountsEveryTensor: inspect's bytes are the file's, every
// tensor counted once under the layer it holds, TorchRec's separate cross
// bias (inter_arch.crossnet.bias.N) under its W kernel; an fp32 checkpoint
// is 100% of fp32 layer by layer, and a quantized file's layers add up to
// its tensors too.
func TestInspectCountsEveryTensor(t *testing.T) {
	q := filepath.Join(t.TempDir(), "dcn-int8.safetensors")
	src := testshared.Path(t, filepath.Join("criteo-torchrec", "dcn.pt"))
	if _, stderr, code := rq(t, "quantize", "--model", src, "--preset", "int8-dynamic", "-o", q, "--quiet"); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr)
	}
	for _, file := range []string{src, testshared.Path(t, filepath.Join("criteo-torchrec", "dlrm.safetensors")), q} {
		out, stderr, code := rq(t, "inspect", file, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", file, code, stderr)
		}
		var r report.Inspect
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		m, err := modelio.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		var fileBytes, layerBytes int64
		for _, tn := range m.Tensors {
			fileBytes += int64(len(tn.Data))
		}
		m.Close()
		for _, l := range r.Layers {
			layerBytes += l.Bytes
			if file != q && l.Bytes != l.FP32Bytes {
				t.Errorf("%s: layer %s: %d bytes, %d at fp32: an fp32 checkpoint's layer is all its fp32 bytes", file, l.Name, l.Bytes, l.FP32Bytes)
			}
		}
		if layerBytes != fileBytes || r.Bytes != fileBytes {
			t.Errorf("%s: layers add up to %d bytes (total %d), the file's tensors to %d", file, layerBytes, r.Bytes, fileBytes)
		}
	}
}

// TestQuantizeDCN: every FC preset quantizes TorchRec's DLRM_DCN, cross
// layers included (V kernels have no bias, which the file records), and the
// file reads back into a network that predicts what the fp32 one does,
// within each precision's error. PyTorch's recipe leaves the cross network
// fp32, as quantize_dynamic does.
func TestQuantizeDCN(t *testing.T) {
	src := testshared.Path(t, filepath.Join("criteo-torchrec", "dcn.pt"))
	ref, err := modelio.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 64
	b := &model.Batch{N: n, NumDense: ref.Net.NumDense, Dense: make([]float32, n*ref.Net.NumDense), Labels: make([]float32, n)}
	for i := range b.Dense {
		b.Dense[i] = rng.Float32() * 3
	}
	for _, tb := range ref.Net.Tables {
		idx, off := make([]int64, n), make([]int32, n+1)
		for i := range idx {
			idx[i], off[i+1] = rng.Int64N(tb.Rows), int32(i+1)
		}
		b.Indices, b.Offsets = append(b.Indices, idx), append(b.Offsets, off)
	}
	want, err := model.NewRunner(ref.Net, 2).Forward(b)
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)
	for _, c := range []struct {
		preset     string
		crossPrec  string
		maxAbsDiff float64
	}{
		{"fp16", "fp16", 1e-3},
		{"int8-dynamic", "int8-dynamic", 2e-2},
		{"pytorch-dynamic", "fp32", 2e-2},
	} {
		out := filepath.Join(t.TempDir(), "q.safetensors")
		if _, stderr, code := rq(t, "quantize", "--model", src, "--preset", c.preset, "-o", out); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.preset, code, stderr)
		}
		q, err := modelio.Load(out)
		if err != nil {
			t.Fatalf("%s: reading back: %v", c.preset, err)
		}
		if !strings.Contains(q.Scheme, "DLRM_DCN") {
			t.Errorf("%s: read back as %q", c.preset, q.Scheme)
		}
		crosses := 0
		for l := range q.Net.Layers() {
			if l.Part == model.PartInteraction {
				crosses++
				if l.Label() != c.crossPrec {
					t.Errorf("%s: %s is %s, want %s", c.preset, l.Name(), l.Label(), c.crossPrec)
				}
			}
		}
		if crosses != 6 {
			t.Errorf("%s: %d cross layers read back, want 6", c.preset, crosses)
		}
		got, err := model.NewRunner(q.Net, 2).Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
		}
		t.Logf("%s: largest prediction difference from fp32 %.2g", c.preset, worst)
		if worst > c.maxAbsDiff || worst == 0 && c.preset != "pytorch-dynamic" {
			t.Errorf("%s: largest prediction difference %.3g (bound %g)", c.preset, worst, c.maxAbsDiff)
		}
		q.Close()
	}
}

// TestPyTorchRecipeTorchRec: rq's pytorch-dynamic preset reproduces
// PyTorch's quantize_dynamic on TorchRec's DLRM and DLRM_DCN (the "int8
// MLP, fp32 tables" rows of peer-*.json, where the cross network stays
// fp32) within 0.02 percentage points of ΔNE, on the test rows of the
// MLPerf-layout files.
func TestPyTorchRecipeTorchRec(t *testing.T) {
	dir := testshared.Path(t, "criteo-torchrec")
	for _, m := range []string{"dlrm", "dcn"} {
		var peer struct {
			Rows []struct {
				MLP, Emb   string
				NEDeltaPct float64 `json:"ne_delta_pct"`
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "peer-"+m+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &peer); err != nil {
			t.Fatal(err)
		}
		want := math.NaN()
		for _, r := range peer.Rows {
			if r.MLP == "int8" && r.Emb == "fp32" {
				want = r.NEDeltaPct
			}
		}
		if math.IsNaN(want) {
			t.Fatalf("peer-%s.json has no int8 MLP, fp32 tables row", m)
		}
		src := filepath.Join(dir, m+".pt")
		q := filepath.Join(t.TempDir(), "q.safetensors")
		if _, stderr, code := rq(t, "quantize", "--model", src, "--preset", "pytorch-dynamic", "-o", q); code != 0 {
			t.Fatalf("%s: exit %d: %s", m, code, stderr)
		}
		out, stderr, code := rq(t, "eval", "--model", q, "--baseline", src, "--data", dir, "--rows", "15429:16715", "--json")
		if code != 0 {
			t.Fatalf("%s: eval exit %d: %s", m, code, stderr)
		}
		got := evalOut(t, out).Delta.NEPct
		t.Logf("%s: ΔNE %+.4f%%, PyTorch %+.4f%%", m, got, want)
		if math.Abs(got-want) > 0.02 {
			t.Errorf("%s: ΔNE %+.4f%%, PyTorch's %+.4f%%: more than 0.02 pp apart", m, got, want)
		}
	}
}

// TestSearchDCN: rq search within +0.05% ΔNE on TorchRec's DLRM_DCN gives a
// plan that passes under rq eval at no more than 30% of the fp32 bytes, its
// cross layers quantized like any FC layer.
func TestSearchDCN(t *testing.T) {
	dir := testshared.Path(t, "criteo-torchrec")
	src := filepath.Join(dir, "dcn.pt")
	tmp := t.TempDir()
	ranges, plan, q := filepath.Join(tmp, "ranges.json"), filepath.Join(tmp, "plan.json"), filepath.Join(tmp, "q.safetensors")
	var searched struct{ Summary struct{ Bytes int64 } }
	for _, args := range [][]string{
		{"calibrate", "--model", src, "--data", dir, "--rows", "0:4000", "-o", ranges},
		{"search", "--model", src, "--ranges", ranges, "--data", dir, "--rows", "15429:16715", "--max-ne-delta", "0.05", "-o", plan, "--json"},
		{"quantize", "--model", src, "--plan", plan, "--ranges", ranges, "-o", q},
	} {
		out, stderr, code := rq(t, args...)
		if code != 0 {
			t.Fatalf("rq %s: exit %d: %s", args[0], code, stderr)
		}
		if args[0] == "search" {
			if err := json.Unmarshal([]byte(out), &searched); err != nil {
				t.Fatalf("search --json: %v", err)
			}
		}
	}
	out, stderr, code := rq(t, "eval", "--model", q, "--baseline", src, "--data", dir, "--rows", "15429:16715", "--max-ne-delta", "0.05", "--json")
	e := evalOut(t, out)
	if searched.Summary.Bytes != e.Bytes {
		t.Errorf("search priced the plan at %d bytes, the quantized model has %d", searched.Summary.Bytes, e.Bytes)
	}
	frac := float64(e.Bytes) / float64(e.BaselineBytes)
	t.Logf("plan: ΔNE %+.4f%%, %.1f%% of fp32", e.Delta.NEPct, 100*frac)
	if code != 0 || e.Pass == nil || !*e.Pass || frac > 0.30 {
		t.Errorf("eval: exit %d, pass %v, %.1f%% of fp32: %s", code, e.Pass, 100*frac, stderr)
	}
	m, err := modelio.Load(q)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The network counts its bytes as the file stores them (the V
	// kernels have no bias: neither may count one).
	var stored int64
	for _, t := range m.Tensors {
		stored += int64(len(t.Data))
	}
	if m.Net.Bytes() != stored {
		t.Errorf("the quantized network counts %d bytes, its file stores %d", m.Net.Bytes(), stored)
	}
	quantized := 0
	for l := range m.Net.Layers() {
		if l.Part == model.PartInteraction && l.Precision() != precision.FP32 {
			quantized++
		}
	}
	if quantized == 0 {
		t.Error("the plan keeps every cross layer fp32")
	}
}
