package modeltest

import "github.com/rqtools/rq/model"

// ProjDot is a test interaction with a layer of its own: dot, then a
// square projection P of its output. It stands for interactions with
// weights (DCN's cross network), whose layers the workflows (search,
// debug) must list, price, quantize, measure and blame like any other FC
// layer, in a network small enough for a unit test.
type ProjDot struct{ P *model.Linear }

func (c ProjDot) String() string                        { return "proj-dot" }
func (c ProjDot) Width(d int, dims []int) int           { return model.Dot.Width(d, dims) }
func (c ProjDot) CheckTables(int, []*model.Table) error { return nil }
func (c ProjDot) Layers() []*model.Linear               { return []*model.Linear{c.P} }
func (c ProjDot) WithLayers(ls []*model.Linear) model.Interaction {
	return ProjDot{P: ls[0]}
}

// Forward is the dot of the feature rows, then P.
func (c ProjDot) Forward(env model.InteractEnv, feat, out model.Mat) {
	tmp := model.Mat{Rows: out.Rows, Cols: out.Cols, Stride: out.Cols, Data: make([]float32, out.Rows*out.Cols)}
	model.Dot.Forward(env, feat, tmp)
	env.FC(c.P, tmp, out)
}
