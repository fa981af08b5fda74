package model_test

import (
	"errors"
	"github.com/rqtools/rq/internal/testshared"
	"io"
	"math"
	"path/filepath"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/metrics"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// shared returns a path under ../shared/criteo-18k; it fails under CI when the
// file is missing and skips otherwise.
func shared(t testing.TB, name string) string {
	t.Helper()
	return testshared.Path(t, filepath.Join("criteo-18k", name))
}

func loadModel(t testing.TB, name string) *modelio.Model {
	m, err := modelio.Load(shared(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func goldenTensor(t *testing.T, g *modelio.SafetensorsFile, name string) *modelio.Tensor {
	tt, ok := g.Lookup(name)
	if !ok {
		t.Fatalf("golden has no %s", name)
	}
	return tt
}

// relL2 is ||got - want|| / ||want||.
func relL2(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestGoldenStages runs the first 8 test rows, built straight from the golden
// file's inputs, and compares every stage with PyTorch's.
func TestGoldenStages(t *testing.T) {
	g, err := modelio.OpenSafetensors(shared(t, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dense, err := modelio.Float32s(goldenTensor(t, g, "dense_in"))
	if err != nil {
		t.Fatal(err)
	}
	sparse, err := modelio.Int64s(goldenTensor(t, g, "sparse_in"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"model.safetensors", "dlrm-criteo.pt"} {
		t.Run(file, func(t *testing.T) {
			m := loadModel(t, file)
			net := m.Net
			if net.Interaction != model.Dot || net.NumDense != 13 || len(net.Tables) != 26 {
				t.Fatalf("inferred %v with %d dense and %d tables", net.Interaction, net.NumDense, len(net.Tables))
			}
			const n = 8
			b := &model.Batch{N: n, NumDense: 13, Dense: dense, Labels: make([]float32, n)}
			for tb := 0; tb < 26; tb++ {
				idx := make([]int64, n)
				off := make([]int32, n+1)
				for i := 0; i < n; i++ {
					idx[i] = sparse[i*26+tb]
					off[i+1] = int32(i + 1)
				}
				b.Indices = append(b.Indices, idx)
				b.Offsets = append(b.Offsets, off)
			}
			for _, threads := range []int{1, 3} {
				seen := map[string][]float32{}
				obs := model.ObserverFunc(func(ev model.Event) {
					var v []float32
					for i := 0; i < ev.Out.Rows; i++ {
						v = append(v, ev.Out.Row(i)...)
					}
					seen[ev.Layer+".out"] = v
				})
				pred, err := model.NewRunner(net, threads, obs).Forward(b)
				if err != nil {
					t.Fatal(err)
				}
				checked := 0
				for _, gt := range g.Tensors {
					want, ok := seen[gt.Name]
					if !ok {
						continue
					}
					ref, err := modelio.Float32s(&gt)
					if err != nil {
						t.Fatal(err)
					}
					if len(ref) != len(want) {
						t.Fatalf("%s: %d values, golden %d", gt.Name, len(want), len(ref))
					}
					if e := relL2(want, ref); e > 1e-5 {
						t.Errorf("threads %d: %s: relative L2 error %.3g > 1e-5", threads, gt.Name, e)
					}
					checked++
				}
				if checked != 4+26+1+3 {
					t.Errorf("compared %d stages, want 34", checked)
				}
				gp, _ := modelio.Float32s(goldenTensor(t, g, "pred"))
				for i := 0; i < n; i++ {
					if d := math.Abs(float64(pred[i] - gp[i])); d > 1e-5 {
						t.Errorf("pred[%d] = %v, golden %v", i, pred[i], gp[i])
					}
				}
			}
		})
	}
}

// TestGoldenPredictionsAndMetrics evaluates all 1,286 test rows from the npz
// and checks predictions against PyTorch's and NE/AUC against peer-test.json.
func TestGoldenPredictionsAndMetrics(t *testing.T) {
	g, err := modelio.OpenSafetensors(shared(t, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gp, err := modelio.Float32s(goldenTensor(t, g, "pred"))
	if err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, "dlrm-criteo.pt")
	rd, err := dataset.Open(shared(t, "dlrm-processed.npz"), dataset.Options{
		Rows: dataset.Range{Start: 15429, End: 16715}, BatchSize: 500,
		NumDense: m.Net.NumDense, TableRows: m.Net.TableRows(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	run := model.NewRunner(m.Net, 2)
	var acc metrics.Accumulator
	var all []float32
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p, err := run.Forward(b)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p...)
		if err := acc.Add(p, b.Labels); err != nil {
			t.Fatal(err)
		}
	}
	if len(all) != len(gp) {
		t.Fatalf("%d predictions, golden %d", len(all), len(gp))
	}
	var worst float64
	for i := range gp {
		worst = max(worst, math.Abs(float64(all[i]-gp[i])))
	}
	if worst > 1e-5 {
		t.Errorf("max |pred - golden| = %.3g > 1e-5", worst)
	}
	r, err := acc.Result()
	if err != nil {
		t.Fatal(err)
	}
	// PyTorch's figures (peer-test.json, fp32 row), to 5 decimals.
	if math.Abs(r.NE-0.9113395164100115) > 5e-6 || math.Abs(r.AUC-0.7053521408563426) > 5e-6 {
		t.Errorf("NE %.6f AUC %.6f, PyTorch 0.911340 0.705352", r.NE, r.AUC)
	}
	t.Logf("max |pred - golden| %.3g; NE %.6f AUC %.6f", worst, r.NE, r.AUC)
}
