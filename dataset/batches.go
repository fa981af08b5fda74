package dataset

import (
	"context"
	"errors"
	"io"

	"github.com/rqtools/rq/model"
)

// Source hands out batches until io.EOF; every Reader is one.
type Source interface {
	Next() (*model.Batch, error)
}

// Batches is the batch-reading loop the commands share: it hands each batch
// of src to fn, in order, until src is exhausted (nil), ctx is done (ctx's
// error, looked at before every batch), or src or fn fails (that error).
// fn may keep the batch: readers hand out fresh ones.
func Batches(ctx context.Context, src Source, fn func(b *model.Batch) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}
