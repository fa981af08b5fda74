package cmd

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// TestEvalParquet: rq eval of TorchRec's DLRM and DLRM_DCN on the test
// rows of clicks.parquet gives the NE and AUC it gives on the MLPerf-layout
// day holding the same rows (which match the peer's fp32 figures to 5
// decimals), with the dense transform defaulting to none for the file's
// float dense columns; shards merge to the one run.
func TestEvalParquet(t *testing.T) {
	for _, c := range mlperfCases[:2] {
		dir := testshared.Path(t, c.dir)
		m := testshared.Path(t, filepath.Join(c.dir, c.model))
		pq := testshared.Path(t, filepath.Join(c.dir, "clicks.parquet"))
		wantNE, wantAUC := peerFP32(t, testshared.Path(t, filepath.Join(c.dir, c.peer)))
		ml := mlperfEval(t, "--model", m, "--data", dir, "--rows", "15429:16715")
		for _, batch := range []string{"2048", "97"} {
			got := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--batch", batch)
			ne, auc := got["ne"].(float64), got["auc"].(float64)
			t.Logf("%s/%s batch %s: Parquet NE %.7f AUC %.7f; MLPerf layout NE %.7f AUC %.7f; peer %.7f %.7f", c.dir, c.model, batch, ne, auc, ml["ne"], ml["auc"], wantNE, wantAUC)
			if math.Abs(ne-ml["ne"].(float64)) > 1e-9 || auc != ml["auc"] || got["examples"].(float64) != 1286 {
				t.Errorf("%s/%s: Parquet NE %v AUC %v on %v rows, MLPerf layout NE %v AUC %v", c.dir, c.model, ne, auc, got["examples"], ml["ne"], ml["auc"])
			}
			if math.Abs(ne-wantNE) > 5e-6 || math.Abs(auc-wantAUC) > 5e-6 {
				t.Errorf("%s/%s: NE %v AUC %v, peer fp32 NE %v AUC %v", c.dir, c.model, ne, auc, wantNE, wantAUC)
			}
		}
		// --data-format parquet says the same; log1p asked for applies.
		named := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--data-format", "parquet")
		if named["ne"] != ml["ne"] && math.Abs(named["ne"].(float64)-ml["ne"].(float64)) > 1e-9 {
			t.Errorf("--data-format parquet: NE %v", named["ne"])
		}
		logged := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--dense-transform", "log1p")
		if logged["ne"] == named["ne"] {
			t.Errorf("%s: --dense-transform log1p gives the default's NE", c.model)
		}
	}
}

// TestParquetJaggedPredictions: the multi-hot DLRM_DCN on the multi-hot
// clicks.parquet, whose bags hold 0 to h_k ids (an empty bag pools to
// zeros), gives golden-dcn-jagged's predictions within 1e-5 in batches of
// 1, 97 and 2048.
func TestParquetJaggedPredictions(t *testing.T) {
	const dir = "criteo-torchrec/multi-hot"
	ld, err := modelio.Load(testshared.Path(t, filepath.Join(dir, "dcn.pt")))
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	g, err := modelio.OpenSafetensors(testshared.Path(t, filepath.Join(dir, "golden-dcn-jagged.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	gt, ok := g.Lookup("pred")
	if !ok {
		t.Fatal("golden-dcn-jagged has no pred")
	}
	want, err := modelio.Float32s(gt)
	g.Close()
	if err != nil {
		t.Fatal(err)
	}
	pq := testshared.Path(t, filepath.Join(dir, "clicks.parquet"))
	for _, batch := range []int{1, 97, 2048} {
		rd, err := dataset.OpenContext(context.Background(), pq, dataset.Options{Rows: dataset.Range{Start: 15429, End: 16715},
			BatchSize: batch, DenseTransform: dataset.None, NumDense: ld.Net.NumDense, TableRows: ld.Net.TableRows()})
		if err != nil {
			t.Fatal(err)
		}
		run := model.NewRunner(ld.Net, 2)
		var got []float32
		empty, long := 0, 0
		for {
			b, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range b.Offsets {
				for i := range b.N {
					switch o[i+1] - o[i] {
					case 0:
						empty++
					case 2, 3:
						long++
					}
				}
			}
			p, err := run.Forward(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p...)
		}
		rd.Close()
		if len(got) != len(want) {
			t.Fatalf("batch %d: %d predictions, golden %d", batch, len(got), len(want))
		}
		if empty == 0 || long == 0 {
			t.Fatalf("batch %d: %d empty bags and %d of 2 or 3 ids: the file's bags are not jagged as read", batch, empty, long)
		}
		worst := 0.0
		for i := range got {
			worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
		}
		t.Logf("batch %d: %d empty bags, %d of 2-3 ids, worst |Δpred| %.3g", batch, empty, long, worst)
		if worst > 1e-5 {
			t.Errorf("batch %d: predictions differ from PyTorch's by up to %g", batch, worst)
		}
	}
	out := mlperfEval(t, "--model", testshared.Path(t, filepath.Join(dir, "dcn.pt")), "--data", pq, "--rows", "15429:16715")
	t.Logf("multi-hot dcn on the jagged Parquet: NE %.7f AUC %.7f", out["ne"], out["auc"])
}

// criteoParquet writes a few rows of the Criteo columns (label, float
// I1..I13, int64 C1..C26) with change applied to the schema and each row
// i (a schema change is the same every time).
func criteoParquet(t *testing.T, change func(g parquet.Group, row map[string]any, i int)) string {
	t.Helper()
	g := parquet.Group{"label": parquet.Int(32)}
	for j := 1; j <= 13; j++ {
		g["I"+strconv.Itoa(j)] = parquet.Leaf(parquet.FloatType)
	}
	for k := 1; k <= 26; k++ {
		g["C"+strconv.Itoa(k)] = parquet.Int(64)
	}
	var rows []map[string]any
	for i := range 5 {
		r := map[string]any{"label": int32(i % 2)}
		for j := 1; j <= 13; j++ {
			r["I"+strconv.Itoa(j)] = float32(j) / 10
		}
		for k := 1; k <= 26; k++ {
			r["C"+strconv.Itoa(k)] = int64(i % 2) // every table has 2 rows
		}
		change(g, r, i)
		rows = append(rows, r)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, parquet.NewSchema("clicklog", g), parquet.MaxRowsPerRowGroup(2))
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "clicks.parquet")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvalParquetHostile: malformed Parquet files end rq eval with exit 1
// and a message naming the file and what is wrong.
func TestEvalParquetHostile(t *testing.T) {
	m := testshared.Path(t, "criteo-torchrec/dcn.pt")
	good := criteoParquet(t, func(parquet.Group, map[string]any, int) {})
	if out := mlperfEval(t, "--model", m, "--data", good); out["examples"].(float64) != 5 {
		t.Fatalf("the good file: %v examples", out["examples"])
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.parquet")
	os.WriteFile(truncated, data[:len(data)*2/3], 0o644)
	noMagic := filepath.Join(t.TempDir(), "clicks")
	os.WriteFile(noMagic, data[:len(data)-3], 0o644)
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"truncated", truncated, []string{truncated, "not a valid Parquet file"}},
		{"missing column", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { delete(g, "C7"); delete(r, "C7") }), []string{`no column "C7" (ids)`}},
		{"string ids", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { g["C3"], r["C3"] = parquet.String(), "a9" }), []string{`column "C3": type`, "want INT32 or INT64 (ids)"}},
		{"string dense", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { g["I4"], r["I4"] = parquet.String(), "0.5" }), []string{`column "I4": type`, "dense feature"}},
		{"id beyond table", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) {
			if i == 3 {
				r["C5"] = int64(1 << 40)
			}
		}),
			[]string{"row 3 (row group 1, column \"C5\")", "id 1099511627776 is beyond embedding table 4"}},
		{"label", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) {
			if i == 3 {
				r["label"] = int32(7)
			}
		}), []string{"row 3 (row group 1, column \"label\")", "label 7 is not 0 or 1"}},
	}
	for _, c := range cases {
		_, stderr, code := rq(t, "eval", "--model", m, "--data", c.path, "-q")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", c.name, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: %q does not say %q", c.name, stderr, w)
			}
		}
	}
	// A damaged file with no .parquet name and its tail cut still goes to
	// the Parquet reader by its magic.
	_, stderr, code := rq(t, "eval", "--model", m, "--data", noMagic, "-q")
	if code != 1 || !strings.Contains(stderr, "Parquet") {
		t.Errorf("cut tail without extension: exit %d: %s", code, stderr)
	}
}
