package quantize

import (
	"fmt"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

// newMXFC quantizes an FC layer's weights to the MX format lp names, each
// output channel's row in blocks of 32 along the input dimension (the MX
// table layout with Out rows of In values). A NaN or infinite weight is an
// error naming the tensor, the output channel and the input column.
func newMXFC(l *model.Linear, lp LayerPlan) (model.FCKernel, error) {
	f, ok := kernels.MXFormatOf(lp.Precision)
	if !ok {
		return nil, fmt.Errorf("%s: %q is not an MX format", l.Name, named(lp.Precision))
	}
	codes := make([]byte, l.Out*kernels.MXCodeBytes(f, l.In))
	scales := make([]byte, l.Out*kernels.MXScales(l.In))
	if err := kernels.QuantizeMXRows(f, l.Name+".weight", l.Weight, l.Out, l.In, codes, scales); err != nil {
		return nil, err
	}
	return &model.MXFC{In: l.In, Out: l.Out, Format: f, Codes: codes, Scales: scales, DynamicAct: lp.Activation == Dynamic}, nil
}
