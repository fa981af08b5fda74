package quantize

import (
	"fmt"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

func newBF16FC(l *model.Linear) (model.FCKernel, error) {
	w := make([]uint16, len(l.Weight))
	kernels.F32ToBF16Slice(w, l.Weight)
	return &model.BF16FC{In: l.In, Out: l.Out, W: w}, nil
}

// simulatedWeight widens a layer's low-precision weights to fp32.
func simulatedWeight(l *model.Linear) ([]float32, error) {
	switch k := l.Kernel.(type) {
	case *model.BF16FC:
		return k.Weight32(), nil
	case *model.MXFC:
		return k.Weight32(), nil
	}
	return nil, fmt.Errorf("%s: cannot simulate a %s layer", l.Name, l.Label())
}
