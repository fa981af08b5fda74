package modelio

// Resource budgets for reading model files. Every number here is absolute:
// it does not grow with the input, so neither a compression ratio (a small
// zip inflating to gigabytes) nor aliasing (many views of one storage, a
// stride-0 view) can buy an attacker more memory or time. docs/limits.md
// lists them with the reasons each is safe for real models. Tensor data
// that is used in place (mapped from the file) is not budgeted: a real
// embedding table can be many GB, and mapping it costs no copy.

import (
	"context"
	"fmt"
)

const (
	// MaxPickleBytes caps a checkpoint's data.pkl, counted as it is
	// inflated (a zip header that understates the size cannot get past
	// it, and inflating stops there). A facebookresearch/dlrm or TorchRec
	// state dict pickles to a few hundred bytes per tensor: thousands of
	// tensors are well under 1 MiB.
	MaxPickleBytes = 64 << 20

	// MaxPickleObjects caps the values the unpickler builds (every
	// container, string, number and rebuilt tensor). Real checkpoints
	// build some tens per tensor: thousands of tensors are well under
	// 100,000.
	MaxPickleObjects = 2_000_000

	// MaxPickleValueBytes caps the Go memory charged to those values, at
	// what Go really spends on each (an empty dict costs about 200 bytes
	// with its hash index, not the 1 byte of its opcode), so that the
	// unpickler's live heap, and with the garbage collector's headroom the
	// process's peak, stays well under 1 GB for any input.
	MaxPickleValueBytes = 128 << 20

	// MaxPickleSteps caps the unpickler's work: opcodes plus bytes hashed
	// and items copied (in units of about 16 bytes). It bounds time where
	// memory is not spent, e.g. a huge key hashed over and over.
	MaxPickleSteps = 256 << 20

	// MaxViewCopyBytes caps the bytes copied for tensor views that are
	// larger than their storage (a stride-0 or overlapping view such as
	// x.expand(...)): copying one makes data the file does not hold.
	// Other non-contiguous views (a transposed weight saved as is) may
	// copy up to the file's size on top of this: they hold each stored
	// element at most once, unless several views share a storage, which
	// this total also bounds. Contiguous tensors are used in place and are
	// not counted.
	MaxViewCopyBytes = 64 << 20

	// MaxInflatedStorageBytes is what deflated tensor storages (torch.save
	// stores them uncompressed; a checkpoint re-zipped with compression
	// deflates them) may inflate to in total, beyond 8 times the file's
	// size: real weights compress by well under 2x, so only a zip bomb
	// needs more.
	MaxInflatedStorageBytes = 64 << 20

	// MaxSafetensorsTensors caps the tensors one safetensors header may
	// describe. Large language models have thousands per file, DLRM and
	// TorchRec models one per table and layer.
	MaxSafetensorsTensors = 100_000

	// MaxSafetensorsMetadataEntries and MaxSafetensorsMetadataBytes cap
	// the header's __metadata__ (keys and values counted). Writers put a
	// handful of entries there ("format": "pt"; rq's quantized files four,
	// the layer table included).
	MaxSafetensorsMetadataEntries = 4096
	MaxSafetensorsMetadataBytes   = 16 << 20
)

// LimitError reports a file refused because reading it would pass one of
// the budgets above: the file may be valid, but it is far larger than any
// real model's, which is what a hostile or corrupt file looks like.
type LimitError struct {
	File  string
	What  string // what was counted, e.g. "objects built by data.pkl"
	Limit int64
	Unit  string // "bytes", or "" for a count
}

func (e *LimitError) Error() string {
	lim := fmt.Sprint(e.Limit)
	if e.Unit == "bytes" {
		lim = sizeString(e.Limit)
	} else if e.Unit != "" {
		lim += " " + e.Unit
	}
	return fmt.Sprintf("%s: refused: %s exceed the limit of %s (hostile or corrupt file? limits: docs/limits.md)", e.File, e.What, lim)
}

// sizeString writes a byte count as "64 MiB (67108864 bytes)" when it is a
// whole number of MiB, else as bytes.
func sizeString(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ctxEvery is how many loop steps a parser takes between checks of its
// context: often enough that a cancelled load stops within milliseconds,
// rarely enough that the check costs nothing measurable.
const ctxEvery = 4096

// ctxErr returns ctx's error, wrapped to name the file, when ctx is done.
// errors.Is(err, context.Canceled) holds for the result.
func ctxErr(ctx context.Context, file string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: reading stopped: %w", file, err)
	}
	return nil
}
