package model

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestLayersOrderAndMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	net := randNet(rng, Dot, 5, []int{8, 4}, []int64{10, 12, 7}, []int{4, 4, 4}, []int{6, 1})
	var names []string
	for l := range net.Layers() {
		names = append(names, l.Name())
		if (l.FC == nil) == (l.Table == nil) || (l.Table != nil && net.Tables[l.TableIndex] != l.Table) || (l.FC != nil && l.TableIndex != -1) {
			t.Fatalf("%s: malformed Layer %+v", l.Name(), l)
		}
	}
	want := []string{"bot_l.0", "bot_l.2", "emb_l.0", "emb_l.1", "emb_l.2", "top_l.0", "top_l.2"}
	if !slices.Equal(names, want) || !slices.Equal(net.LayerNames(), want) {
		t.Fatalf("Layers: %v, LayerNames: %v; want %v", names, net.LayerNames(), want)
	}
	var fcs []string
	for l := range net.Linears() {
		fcs = append(fcs, l.Name)
	}
	if !slices.Equal(fcs, []string{"bot_l.0", "bot_l.2", "top_l.0", "top_l.2"}) {
		t.Fatalf("Linears: %v", fcs)
	}
	if net.InputWidth() != net.Top[0].In {
		t.Fatalf("InputWidth %d, top takes %d", net.InputWidth(), net.Top[0].In)
	}

	// Map replaces what its functions return and shares the rest; the
	// original is untouched.
	repl := &Linear{Name: "top_l.0", In: net.Top[0].In, Out: 6, Weight: net.Top[0].Weight, Bias: net.Top[0].Bias}
	out, err := net.Map(func(l *Linear) (*Linear, error) {
		if l.Name == "top_l.0" {
			return repl, nil
		}
		return l, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Top[0] != repl || net.Top[0] == repl || out.Bottom[1] != net.Bottom[1] || out.Tables[2] != net.Tables[2] {
		t.Fatal("Map did not replace exactly top_l.0")
	}
	out.Tables[0] = nil
	if net.Tables[0] == nil {
		t.Fatal("Map's copy shares the Tables slice with the original")
	}
	boom := errors.New("boom")
	if _, err := net.Map(nil, func(*Table) (*Table, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Map's error: %v", err)
	}

	// WithLayer swaps one layer by name.
	tb := &Table{Name: "emb_l.1", Rows: 12, Dim: 4, Weight: make([]float32, 48)}
	w, ok := net.WithLayer(Layer{Table: tb, TableIndex: 1})
	if !ok || w.Tables[1] != tb || net.Tables[1] == tb {
		t.Fatal("WithLayer did not swap emb_l.1")
	}
	if _, ok := net.WithLayer(Layer{FC: &Linear{Name: "nope"}, TableIndex: -1}); ok {
		t.Fatal("WithLayer found a layer the network lacks")
	}
	if l, ok := net.Layer("emb_l.2"); !ok || l.Table != net.Tables[2] {
		t.Fatal("Layer(emb_l.2)")
	}
	if net.Bytes() != 4*net.Params() {
		t.Fatalf("fp32 Bytes %d, Params %d", net.Bytes(), net.Params())
	}
}
