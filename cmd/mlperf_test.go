package cmd

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// mlperfCases are the TorchRec models beside their MLPerf-layout days.
var mlperfCases = []struct{ dir, model, golden, peer string }{
	{"criteo-torchrec", "dlrm.pt", "golden-dlrm.safetensors", "peer-dlrm.json"},
	{"criteo-torchrec", "dcn.pt", "golden-dcn.safetensors", "peer-dcn.json"},
	{"criteo-torchrec/multi-hot", "dcn.pt", "golden-dcn.safetensors", "peer-dcn.json"},
}

// peerFP32 reads the fp32 row of a peer-*.json (torchrec_peer.py's output).
func peerFP32(t *testing.T, path string) (ne, auc float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Rows []struct {
			MLP, Emb string
			NE       float64 `json:"ne"`
			AUC      float64 `json:"auc"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rows {
		if r.MLP == "fp32" && r.Emb == "fp32" {
			return r.NE, r.AUC
		}
	}
	t.Fatalf("%s: no fp32 row", path)
	return 0, 0
}

func mlperfEval(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, stderr, code := rq(t, append([]string{"eval", "--json", "-q"}, args...)...)
	if code != 0 {
		t.Fatalf("rq eval %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return m
}

// TestEvalMLPerf: rq eval of TorchRec's DLRM, DLRM_DCN and the multi-hot
// DLRM_DCN on the test rows of their MLPerf-layout directories gives the
// peer's (PyTorch's) fp32 NE and AUC to 5 decimals, with the dense
// transform defaulting to none for these already transformed files; the
// dense file's path reads the same rows, and shards merge to the one run.
func TestEvalMLPerf(t *testing.T) {
	for _, c := range mlperfCases {
		dir := testshared.Path(t, c.dir)
		m := testshared.Path(t, filepath.Join(c.dir, c.model))
		wantNE, wantAUC := peerFP32(t, testshared.Path(t, filepath.Join(c.dir, c.peer)))
		got := mlperfEval(t, "--model", m, "--data", dir, "--rows", "15429:16715")
		ne, auc := got["ne"].(float64), got["auc"].(float64)
		t.Logf("%s/%s: NE %.7f (peer %.7f), AUC %.7f (peer %.7f)", c.dir, c.model, ne, wantNE, auc, wantAUC)
		if math.Abs(ne-wantNE) > 5e-6 || math.Abs(auc-wantAUC) > 5e-6 || got["examples"].(float64) != 1286 {
			t.Errorf("%s/%s: NE %v AUC %v on %v rows, peer fp32 NE %v AUC %v", c.dir, c.model, ne, auc, got["examples"], wantNE, wantAUC)
		}
		byFile := mlperfEval(t, "--model", m, "--data", filepath.Join(dir, "day_0_dense.npy"), "--rows", "15429:16715", "--batch", "97")
		if math.Abs(byFile["ne"].(float64)-ne) > 1e-9 || byFile["auc"] != got["auc"] {
			t.Errorf("%s: the dense file's path gives NE %v AUC %v, the directory %v %v", c.dir, byFile["ne"], byFile["auc"], ne, auc)
		}
		// log1p asked for explicitly applies: the default really is none.
		logged := mlperfEval(t, "--model", m, "--data", dir, "--rows", "15429:16715", "--dense-transform", "log1p")
		if logged["ne"] == got["ne"] {
			t.Errorf("%s: --dense-transform log1p gives the default's NE %v", c.dir, ne)
		}
	}

	// Two shards of 500-row batches merge to the unsharded figures.
	c := mlperfCases[2]
	dir, m := testshared.Path(t, c.dir), testshared.Path(t, filepath.Join(c.dir, c.model))
	common := []string{"--model", m, "--data", dir, "--rows", "15429:16715", "--batch", "500"}
	full := mlperfEval(t, common...)
	tmp := t.TempDir()
	var states []string
	for i := range 2 {
		s := filepath.Join(tmp, fmt.Sprintf("s%d.json", i))
		part := mlperfEval(t, append(common, "--shard", fmt.Sprintf("%d/2", i), "--state-out", s)...)
		if want := []float64{786, 500}[i]; part["examples"].(float64) != want {
			t.Errorf("shard %d/2: %v examples, want %v", i, part["examples"], want)
		}
		states = append(states, s)
	}
	out, stderr, code := rq(t, "merge", states[1], states[0], "--json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var merged map[string]any
	if err := json.Unmarshal([]byte(out), &merged); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"examples", "ne", "auc", "logloss"} {
		if merged[k] != full[k] {
			t.Errorf("%s: shards merged %v, one run %v", k, merged[k], full[k])
		}
	}
}

// TestMLPerfPredictions: the rows rq reads from the MLPerf layout, in
// batches of 1, 97 or 2048, give PyTorch's golden predictions within 1e-5,
// and the same predictions whatever the batch size.
func TestMLPerfPredictions(t *testing.T) {
	for _, c := range mlperfCases {
		dir := testshared.Path(t, c.dir)
		ld, err := modelio.Load(testshared.Path(t, filepath.Join(c.dir, c.model)))
		if err != nil {
			t.Fatal(err)
		}
		g, err := modelio.OpenSafetensors(testshared.Path(t, filepath.Join(c.dir, c.golden)))
		if err != nil {
			t.Fatal(err)
		}
		gt, ok := g.Lookup("pred")
		if !ok {
			t.Fatalf("%s has no pred", c.golden)
		}
		want, err := modelio.Float32s(gt)
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		var first []float32
		for _, batch := range []int{1, 97, 2048} {
			rd, err := dataset.OpenContext(context.Background(), dir, dataset.Options{Rows: dataset.Range{Start: 15429, End: 16715},
				BatchSize: batch, DenseTransform: dataset.None, NumDense: ld.Net.NumDense, TableRows: ld.Net.TableRows()})
			if err != nil {
				t.Fatal(err)
			}
			run := model.NewRunner(ld.Net, 2)
			var got []float32
			for {
				b, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				p, err := run.Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p...)
			}
			rd.Close()
			if len(got) != len(want) {
				t.Fatalf("%s/%s batch %d: %d predictions, golden %d", c.dir, c.model, batch, len(got), len(want))
			}
			worst := 0.0
			for i := range got {
				worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
			}
			if worst > 1e-5 {
				t.Errorf("%s/%s batch %d: predictions differ from PyTorch's by up to %g", c.dir, c.model, batch, worst)
			}
			if first == nil {
				first = got
			}
			for i := range got {
				if math.Abs(float64(got[i])-float64(first[i])) > 1e-6 {
					t.Fatalf("%s/%s: row %d predicts %v in batches of %d, %v in batches of 1", c.dir, c.model, 15429+i, got[i], batch, first[i])
				}
			}
		}
		ld.Close()
	}
}

// npyFile encodes little-endian 4-byte values as a .npy file of the given
// descr and shape.
func npyFile(descr string, shape [2]int, vals []uint32) []byte {
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }", descr, shape[0], shape[1])
	hdr += strings.Repeat(" ", (10+len(hdr)+1+63)/64*64-10-len(hdr)-1) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	binary.Write(&b, binary.LittleEndian, vals)
	return b.Bytes()
}

// TestEvalMLPerfBadIds: an id beyond its table in a day of MLPerf files is
// an error naming the file, the array, the row and the column (exit 1), and
// --bad-rows skip counts the row instead.
func TestEvalMLPerfBadIds(t *testing.T) {
	m := testshared.Path(t, "criteo-torchrec/dlrm.pt")
	dir := t.TempDir()
	const n = 6
	dense := make([]uint32, n*13)
	labels := make([]uint32, n)
	for i := range dense {
		dense[i] = math.Float32bits(float32(i%7) * 0.25)
	}
	labels[2] = 1
	os.WriteFile(filepath.Join(dir, "day_3_dense.npy"), npyFile("<f4", [2]int{n, 13}, dense), 0o644)
	os.WriteFile(filepath.Join(dir, "day_3_labels.npy"), npyFile("<i4", [2]int{n, 1}, labels), 0o644)
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	for k := range 26 {
		ids := make([]uint32, n*2)
		for i := range ids {
			ids[i] = uint32(i % 3)
		}
		if k == 7 {
			ids[4*2+1] = 1 << 30 // row 4, column 1
		}
		w, _ := zw.Create(fmt.Sprintf("%d.npy", k))
		w.Write(npyFile("<i4", [2]int{n, 2}, ids))
	}
	zw.Close()
	os.WriteFile(filepath.Join(dir, "day_3_sparse_multi_hot.npz"), z.Bytes(), 0o644)

	_, stderr, code := rq(t, "eval", "--model", m, "--data", dir, "-q")
	for _, want := range []string{"day_3_sparse_multi_hot.npz: row 4 (array \"7\" column 1)", "id 1073741824 is beyond embedding table 7"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("exit %d, stderr %q, want exit 1 and %q", code, stderr, want)
		}
	}
	// A second day, day 10 (after day 3 in number, before it by name):
	// the directory is read as both days, in number order, and a bad row
	// names its day's file, its row in the day and its row in the stream.
	for _, f := range []string{"dense.npy", "labels.npy", "sparse_multi_hot.npz"} {
		b, _ := os.ReadFile(filepath.Join(dir, "day_3_"+f))
		os.WriteFile(filepath.Join(dir, "day_10_"+f), b, 0o644)
	}
	_, stderr, code = rq(t, "eval", "--model", m, "--data", dir, "--rows", "6:", "-q")
	for _, want := range []string{"day_10_sparse_multi_hot.npz: row 4 (array \"7\" column 1; row 10 of " + dir + ")", "id 1073741824 is beyond embedding table 7"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("two days: exit %d, stderr %q, want exit 1 and %q", code, stderr, want)
		}
	}
	both := mlperfEval(t, "--model", m, "--data", dir, "--bad-rows", "skip", "--batch", "4")
	if both["examples"].(float64) != 2*(n-1) || both["skipped_rows"].(float64) != 2 {
		t.Fatalf("two days, skip: %v examples, %v skipped", both["examples"], both["skipped_rows"])
	}
	os.Remove(filepath.Join(dir, "day_10_dense.npy"))
	got := mlperfEval(t, "--model", m, "--data", filepath.Join(dir, "day_3_dense.npy"), "--bad-rows", "skip", "--data-format", "mlperf")
	if got["examples"].(float64) != n-1 || got["skipped_rows"].(float64) != 1 {
		t.Fatalf("skip: %v examples, %v skipped", got["examples"], got["skipped_rows"])
	}
}

// TestMLPerfDataFlags: --data-format accepts mlperf; --dense-transform
// defaults to none for this layout only, and an explicit value wins.
func TestMLPerfDataFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want dataset.DenseTransform
	}{
		{[]string{"--data", dir}, dataset.None},
		{[]string{"--data", "x/day_0_dense.npy"}, dataset.None},
		{[]string{"--data", "x.npz", "--data-format", "mlperf"}, dataset.None},
		{[]string{"--data", dir, "--dense-transform", "log1p"}, dataset.Log1p},
		{[]string{"--data", "x.npz"}, dataset.Log1p},
		{[]string{"--data", "x/day_0_dense.npy", "--data-format", "npz"}, dataset.Log1p},
	} {
		var got *evalOptions
		g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		cmd := newEvalCmd(g, func(_ context.Context, o *evalOptions) error { got = o; return nil })
		cmd.SetArgs(append([]string{"--model", "m.pt"}, c.args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		o, err := got.data.options(13, nil)
		if err != nil || o.DenseTransform != c.want {
			t.Errorf("%v: dense transform %v (%v), want %v", c.args, o.DenseTransform, err, c.want)
		}
	}
	d := dataFlags{path: dir, format: "orc", batch: 1, threads: 1, denseTransform: "log1p", badRows: "fail"}
	if _, err := d.options(13, nil); err == nil || !strings.Contains(err.Error(), "npz, tsv, mlperf or parquet") {
		t.Errorf("--data-format orc: %v", err)
	}
	d.format = "mlperf"
	if _, err := d.options(13, nil); err != nil {
		t.Errorf("--data-format mlperf: %v", err)
	}
}
