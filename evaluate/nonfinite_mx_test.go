package evaluate

import (
	"context"
	"errors"
	"testing"

	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
)

// TestRunNonFiniteMX: an MX table whose row 1 has the NaN scale byte (an
// E8M0 0xFF, which rq never writes but a damaged file may hold) makes NaN
// predictions, and the diagnosis finds the row by dequantizing MX rows.
func TestRunNonFiniteMX(t *testing.T) {
	q := tinyNet(1)
	tb := q.Tables[0]
	codes := make([]byte, tb.Rows*int64(kernels.MXCodeBytes(kernels.MXFP4E2M1, tb.Dim)))
	scales := make([]byte, tb.Rows*int64(kernels.MXScales(tb.Dim)))
	if err := kernels.QuantizeMXRows(kernels.MXFP4E2M1, "emb_l.0.weight", tb.Weight, int(tb.Rows), tb.Dim, codes, scales); err != nil {
		t.Fatal(err)
	}
	clean, err := kernels.NewMXBagTable(kernels.MXFP4E2M1, tb.Rows, tb.Dim, codes, scales)
	if err != nil {
		t.Fatal(err)
	}
	q.Tables[0] = &model.Table{Name: "emb_l.0", Rows: tb.Rows, Dim: tb.Dim, Kernel: clean}
	if _, err := Run(context.Background(), &sliceReader{batches()}, Options{Model: q, ModelFile: "q.safetensors", Threads: 1}); err != nil {
		t.Fatalf("finite MX table: %v", err)
	}
	bad := append([]byte(nil), scales...)
	bad[1*kernels.MXScales(tb.Dim)] = 0xFF
	bt, err := kernels.NewMXBagTable(kernels.MXFP4E2M1, tb.Rows, tb.Dim, codes, bad)
	if err != nil {
		t.Fatal(err)
	}
	q.Tables[0] = &model.Table{Name: "emb_l.0", Rows: tb.Rows, Dim: tb.Dim, Kernel: bt}
	_, err = Run(context.Background(), &sliceReader{batches()}, Options{Model: q, ModelFile: "q.safetensors", Threads: 1})
	var nf *NonFinitePredictionError
	if !errors.As(err, &nf) || nf.Tensor != "emb_l.0.weight" || nf.TableRow != 1 || nf.Row != 1 || !nf.Exact {
		t.Errorf("NaN scale in row 1 of an MX table: %v", err)
	}
}
