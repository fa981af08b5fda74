package calibrate

import (
	"strings"
	"testing"

	"github.com/rqtools/rq/model"
)

func TestInputsFollowReLU(t *testing.T) {
	net := smallNet()
	net.Bottom = append(net.Bottom, &model.Linear{Name: "bot_l.4", In: 2, Out: 2, Act: model.ActNone, Weight: make([]float32, 4), Bias: make([]float32, 2)})
	net.Bottom[1].Act = model.ActSigmoid
	var got []string
	for _, in := range Inputs(net) {
		got = append(got, in.Layer.Name+"="+map[bool]string{true: "relu", false: "two-sided"}[in.FollowsReLU])
	}
	// bot_l.2 follows a ReLU; bot_l.4 a sigmoid; top_l.0 the interaction.
	want := "bot_l.0=two-sided bot_l.2=relu bot_l.4=two-sided top_l.0=two-sided top_l.2=relu"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
}

// TestInputsAcrossTheInteraction: the bottom MLP ends in a ReLU, but the
// first top layer takes the interaction's output (dot products can be
// negative): two-sided. Inputs come in net.Linears order.
func TestInputsAcrossTheInteraction(t *testing.T) {
	net := smallNet()
	var got, linears []string
	for _, in := range Inputs(net) {
		got = append(got, in.Layer.Name+"="+map[bool]string{true: "relu", false: "two-sided"}[in.FollowsReLU])
	}
	for l := range net.Linears() {
		linears = append(linears, l.Name)
	}
	want := "bot_l.0=two-sided bot_l.2=relu top_l.0=two-sided top_l.2=relu"
	if strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
	o, err := NewObserver(net, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Layers(), " ") != strings.Join(linears, " ") {
		t.Errorf("observed layers %v, want net.Linears %v", o.Layers(), linears)
	}
}

func TestObserverEvents(t *testing.T) {
	o, err := NewObserver(smallNet(), 16)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Layers(), ",") != "bot_l.0,bot_l.2,top_l.0,top_l.2" {
		t.Errorf("layers %v", o.Layers())
	}
	// A strided input: only the first Cols of each row count.
	data := []float32{1, 2, 99, 3, 4, 99, 5, 6}
	o.Observe(model.Event{Layer: "bot_l.0", In: model.Mat{Rows: 3, Cols: 2, Stride: 3, Data: data}})
	h := o.Histogram("bot_l.0")
	if h.Count() != 6 || h.Max() != 6 || h.Min() != 1 {
		t.Errorf("strided: count %d min %v max %v, want 6 values 1..6", h.Count(), h.Min(), h.Max())
	}
	// Other layers' events are ignored.
	o.Observe(model.Event{Layer: "emb_l.0", Out: model.Mat{Rows: 1, Cols: 2, Stride: 2, Data: []float32{7, 8}}})
	o.Observe(model.Event{Layer: "interaction", In: model.Mat{Rows: 1, Cols: 2, Stride: 2, Data: []float32{7, 8}}})
	if h.Count() != 6 || o.Histogram("emb_l.0") != nil {
		t.Error("a non-Linear event was recorded")
	}
	if o.Err() != nil {
		t.Fatal(o.Err())
	}
	// A malformed event is an error, not a panic.
	o.Observe(model.Event{Layer: "top_l.0", In: model.Mat{Rows: 2, Cols: 5, Stride: 5, Data: make([]float32, 7)}})
	if err := o.Err(); err == nil || !strings.Contains(err.Error(), "top_l.0: input is 2x5") {
		t.Errorf("short input: %v", err)
	}
	if _, err := o.Ranges(Options{ModelSHA256: testSHA}); err == nil {
		t.Error("Ranges after a malformed event")
	}
}

func TestNewObserverErrors(t *testing.T) {
	net := smallNet()
	net.Top[0].Name = "bot_l.2"
	if _, err := NewObserver(net, 0); err == nil || !strings.Contains(err.Error(), "not unique") {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := NewObserver(smallNet(), 7); err == nil {
		t.Error("7 bins accepted")
	}
	if _, err := NewObserver(&model.Network{}, 0); err == nil {
		t.Error("a network without Linear layers")
	}
}

func TestWeightStats(t *testing.T) {
	l := &model.Linear{Name: "x", In: 3, Out: 2, Weight: []float32{-1, 0.5, 0.25, 0, 0, 2}}
	ws, err := NewWeightStats(l)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Min[0] != -1 || ws.Max[0] != 0.5 || ws.AbsMax[0] != 1 || ws.Min[1] != 0 || ws.Max[1] != 2 || ws.AbsMax[1] != 2 {
		t.Errorf("stats %+v", ws)
	}
	l.Weight = l.Weight[:5]
	if _, err := NewWeightStats(l); err == nil {
		t.Error("short weight accepted")
	}
}
