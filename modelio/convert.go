package modelio

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/rqtools/rq/kernels"
)

// hostLittleEndian reports whether this machine stores integers least
// significant byte first, as safetensors does; only then can F32 data be
// reinterpreted in place.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// checkedLen returns the tensor's element count after checking that its
// shape is sane and its Data holds exactly that many elements, so the
// conversions below can index without further bounds reasoning.
func checkedLen(t *Tensor) (int, error) {
	n, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if int64(len(t.Data)) != n {
		return 0, fmt.Errorf("tensor %q: %s%v needs %d bytes of data, has %d", t.Name, t.DType, t.Shape, n, len(t.Data))
	}
	return int(n) / t.DType.Size(), nil
}

// Float32s returns the tensor's values as float32, converting from any
// numeric dtype: F16 and BF16 widen exactly, F64 rounds to nearest (ties to
// even), integers convert exactly up to 2^24 in magnitude and round to
// nearest beyond. BOOL gives 0 and 1. The result is a new slice.
func Float32s(t *Tensor) ([]float32, error) {
	n, err := checkedLen(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(d[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(d[8*i:])))
		}
	case F16:
		for i := range out {
			out[i] = kernels.F16ToF32(le.Uint16(d[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = kernels.BF16ToF32(le.Uint16(d[2*i:]))
		}
	case I64:
		for i := range out {
			out[i] = float32(int64(le.Uint64(d[8*i:])))
		}
	case I32:
		for i := range out {
			out[i] = float32(int32(le.Uint32(d[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = float32(int16(le.Uint16(d[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = float32(int8(d[i]))
		}
	case U8:
		for i := range out {
			out[i] = float32(d[i])
		}
	case Bool:
		for i := range out {
			v, err := boolAt(t, i)
			if err != nil {
				return nil, err
			}
			out[i] = float32(v)
		}
	default:
		return nil, fmt.Errorf("tensor %q: cannot convert dtype %q to float32", t.Name, t.DType)
	}
	return out, nil
}

// boolAt reads element i of a BOOL tensor. Any byte but 0 or 1 is refused:
// such a file is corrupt, and guessing would hide that.
func boolAt(t *Tensor, i int) (int64, error) {
	switch b := t.Data[i]; b {
	case 0, 1:
		return int64(b), nil
	default:
		return 0, fmt.Errorf("tensor %q: element %d of a BOOL tensor is %d, want 0 or 1", t.Name, i, b)
	}
}

// Float32View returns the tensor's F32 data reinterpreted in place, without
// copying, when that is possible: the dtype is F32, the host is
// little-endian, Data is 4-byte aligned and its length matches the shape.
// Otherwise it returns (nil, false) and the caller should use Float32s.
// The view shares Data's memory: it is read-only (a memory-mapped file's
// pages are mapped read-only, and writing would crash) and becomes invalid
// when the file is closed.
func Float32View(t *Tensor) ([]float32, bool) {
	if t.DType != F32 || !hostLittleEndian {
		return nil, false
	}
	n, err := checkedLen(t)
	if err != nil {
		return nil, false
	}
	if n == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), n), true
}

// Int64s returns the tensor's values as int64. Integer and BOOL tensors
// convert exactly; float tensors are accepted when every value is integral
// and within int64 range (ids are sometimes stored as floats), and otherwise
// the error names the tensor and the first offending element.
func Int64s(t *Tensor) ([]int64, error) {
	n, err := checkedLen(t)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(d[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(d[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(d[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case U8:
		for i := range out {
			out[i] = int64(d[i])
		}
	case Bool:
		for i := range out {
			if out[i], err = boolAt(t, i); err != nil {
				return nil, err
			}
		}
	case F64, F32, F16, BF16:
		for i := range out {
			var v float64
			switch t.DType {
			case F64:
				v = math.Float64frombits(le.Uint64(d[8*i:]))
			case F32:
				v = float64(math.Float32frombits(le.Uint32(d[4*i:])))
			case F16:
				v = float64(kernels.F16ToF32(le.Uint16(d[2*i:])))
			case BF16:
				v = float64(kernels.BF16ToF32(le.Uint16(d[2*i:])))
			}
			// -2^63 is exact in float64; 2^63 is the first value past int64.
			if v != math.Trunc(v) || v < -(1<<63) || v >= 1<<63 {
				return nil, fmt.Errorf("tensor %q: element %d is %v, not an integer in int64 range", t.Name, i, v)
			}
			out[i] = int64(v)
		}
	default:
		return nil, fmt.Errorf("tensor %q: cannot convert dtype %q to int64", t.Name, t.DType)
	}
	return out, nil
}

// F32Tensor builds an F32 tensor holding a little-endian copy of v. The shape
// is copied too; its element count should equal len(v) (a mismatch is not
// checked here but is reported by EncodeSafetensors and Float32s).
func F32Tensor(name string, shape []int, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int{}, shape...), Data: data}
}

// I64Tensor builds an I64 tensor holding a little-endian copy of v, as
// F32Tensor does.
func I64Tensor(name string, shape []int, v []int64) Tensor {
	data := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(x))
	}
	return Tensor{Name: name, DType: I64, Shape: append([]int{}, shape...), Data: data}
}
