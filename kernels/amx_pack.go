package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The AMX GEMMs' weight layout and blocking, run on the tile model
// (amx_model.go). These drivers are what an AMX assembly kernel does, tile
// instruction for tile instruction; the assembly is to be tested against
// them on a CPU with AMX (docs/amx.md).
//
// Layout (oneDNN's BA16a64b4a for int8, BA16a64b2a for bf16): W [N x K]
// is cut into panels of 64 output columns (N zero-padded to a multiple of
// 64) and K blocks of 64 bytes (64 int8 or 32 bf16, K zero-padded). A
// panel's K block is 16 rows of 256 bytes: row g holds, for each of the 64
// columns, the dword of its 4 int8 (or 2 bf16) weights of k group g, so
// the B tile of columns [16c, 16c+16) is 16 rows of 64 bytes at byte 64c,
// stride 256: a TILELOADD with no repacking.
//
// Blocking: a kernel call takes up to 32 rows of A (two A tiles of 16
// rows, the second with the remaining rows) and sweeps all N in steps of 32
// columns (two B tiles), with four C tiles of 16x16 dwords, over K in steps
// of 64 bytes: two A loads, two B loads, four TDPBUSD (or TDPBF16PS) per
// step. One LDTILECFG per call (the tiles' rows depend only on the rows of
// A left) and TILERELEASE at its end. A is read in place for the K blocks
// that lie within K; the last, partial block is read from a 32 x 64-byte
// copy of the rows' tails, zero-padded, so nothing past a row's K is read.
// bf16 A (rounded from fp32 as VCVTNE2PS2BF16 does) is staged per call in
// a zero-padded buffer. C tiles are stored to a stack buffer and the
// epilogue, the one of the VNNI path, writes the valid elements.

// Tile numbers of the blocking: A0, A1, B0, B1, then C[i][j] = 4 + 2i + j.
const (
	amxTA0, amxTA1 = 0, 1
	amxTB0, amxTB1 = 2, 3
	amxTC          = 4
	amxPanel       = 64  // output columns per packed panel
	amxKBlock      = 64  // bytes of K per tile step
	amxRowBytes    = 256 // bytes of a packed panel row (64 columns x 4)
	amxMR, amxNR   = 32, 32
)

// amxWeights is W packed for the AMX tiles: ceil(N/64) panels of kb K
// blocks, each 16 x 256 bytes.
type amxWeights struct {
	n, k int // N, and K in elements
	kb   int // K blocks of 64 bytes
	data []byte
}

// blockOff is the byte offset of panel p's K block b.
func (w *amxWeights) blockOff(p, b int) int { return (p*w.kb + b) * 16 * amxRowBytes }

// newAMXWeightsI8 packs the int8 weights of p for TDPBUSD: byte t of
// column j's dword in row g of K block b is W[j][64b + 4g + t].
func newAMXWeightsI8(p *PackedI8) *amxWeights {
	n, k := p.N, p.K
	w := &amxWeights{n: n, k: k, kb: (k + amxKBlock - 1) / amxKBlock}
	np := (n + amxPanel - 1) / amxPanel
	w.data = make([]byte, np*w.kb*16*amxRowBytes)
	for j := 0; j < n; j++ {
		for kk := 0; kk < k; kk++ {
			w.data[w.blockOff(j/amxPanel, kk/64)+(kk%64/4)*amxRowBytes+4*(j%amxPanel)+kk%4] = byte(p.Weight(j, kk))
		}
	}
	return w
}

// newAMXWeightsBF16 packs the bf16 weights of p for TDPBF16PS: half t of
// column j's dword in row q of K block b is W[j][32b + 2q + t], little-endian.
func newAMXWeightsBF16(p *PackedBF16) *amxWeights {
	n, k := p.N, p.K
	w := &amxWeights{n: n, k: k, kb: (k + 31) / 32}
	np := (n + amxPanel - 1) / amxPanel
	w.data = make([]byte, np*w.kb*16*amxRowBytes)
	for j := 0; j < n; j++ {
		for kk := 0; kk < k; kk++ {
			h := p.data[j/panelW*panelW*2*p.kp+kk/2*2*panelW+2*(j%panelW)+kk%2]
			off := w.blockOff(j/amxPanel, kk/32) + (kk%32/2)*amxRowBytes + 4*(j%amxPanel) + 2*(kk%2)
			binary.LittleEndian.PutUint16(w.data[off:], h)
		}
	}
	return w
}

// amxConfig returns the palette-1 configuration of a call on mr rows
// (1..32): A tiles of min(16, rows left) rows x 64 bytes, full 16 x 64 B
// tiles, C tiles with their A tile's rows.
func amxConfig(mr int) [64]byte {
	cfg := amxTileCfg{Palette: 1}
	for i := 0; i < 2; i++ {
		rows := min(16, mr-16*i)
		if rows <= 0 {
			continue
		}
		cfg.Rows[amxTA0+i], cfg.Colsb[amxTA0+i] = uint8(rows), 64
		for j := 0; j < 2; j++ {
			cfg.Rows[amxTC+2*i+j], cfg.Colsb[amxTC+2*i+j] = uint8(rows), 64
		}
	}
	for j := 0; j < 2; j++ {
		cfg.Rows[amxTB0+j], cfg.Colsb[amxTB0+j] = 16, 64
	}
	return cfg.Bytes()
}

// amxBTile returns the offset of the B tile of columns [j, j+16) in K
// block b (its stride is amxRowBytes).
func (w *amxWeights) bTile(j, b int) int {
	return w.blockOff(j/amxPanel, b) + 4*(j%amxPanel)
}

// amxGemmI8Model computes p's int8 GEMM on rows [0, m) of a, as the
// i8GemmFn implementations do (validated arguments, K, m, N >= 1), with
// every multiply on the tile model and the epilogue of i8Out.store. An
// error is a tile fault the hardware would raise: a bug in the blocking.
func amxGemmI8Model(p *PackedI8, w *amxWeights, m int, a []uint8, lda int, o *i8Out) error {
	n, k := p.N, p.K
	if err := amxCheckWeights(n, k, w); err != nil {
		return err
	}
	kfull := k / amxKBlock // K blocks read in place
	var x amxModel
	var tail [amxMR * amxKBlock]byte
	var cbuf [4][16 * 64]byte
	for i0 := 0; i0 < m; i0 += amxMR {
		mr := min(amxMR, m-i0)
		mt := (mr + 15) / 16
		if kfull < w.kb {
			for r := 0; r < mr; r++ {
				row := a[(i0+r)*lda+kfull*amxKBlock : (i0+r)*lda+k]
				clear(tail[r*amxKBlock+copy(tail[r*amxKBlock:], row) : (r+1)*amxKBlock])
			}
		}
		cfg := amxConfig(mr)
		if err := x.ldtilecfg(cfg[:], 0); err != nil {
			return err
		}
		for j0 := 0; j0 < n; j0 += amxNR {
			nt := 1
			if n-j0 > 16 {
				nt = 2
			}
			for i := 0; i < mt; i++ {
				for j := 0; j < nt; j++ {
					if err := x.tilezero(amxTC + 2*i + j); err != nil {
						return err
					}
				}
			}
			for b := 0; b < w.kb; b++ {
				for i := 0; i < mt; i++ {
					var err error
					if b < kfull {
						err = x.tileloadd(amxTA0+i, a, (i0+16*i)*lda+b*amxKBlock, lda)
					} else {
						err = x.tileloadd(amxTA0+i, tail[:], 16*i*amxKBlock, amxKBlock)
					}
					if err != nil {
						return err
					}
				}
				for j := 0; j < nt; j++ {
					if err := x.tileloadd(amxTB0+j, w.data, w.bTile(j0+16*j, b), amxRowBytes); err != nil {
						return err
					}
				}
				for i := 0; i < mt; i++ {
					for j := 0; j < nt; j++ {
						if err := x.tdpbusd(amxTC+2*i+j, amxTA0+i, amxTB0+j); err != nil {
							return err
						}
					}
				}
			}
			for i := 0; i < mt; i++ {
				for j := 0; j < nt; j++ {
					if err := x.tilestored(cbuf[2*i+j][:], 0, 64, amxTC+2*i+j); err != nil {
						return err
					}
					for r := 0; r < min(16, mr-16*i); r++ {
						for q := 0; q < min(16, n-j0-16*j); q++ {
							acc := int32(binary.LittleEndian.Uint32(cbuf[2*i+j][64*r+4*q:]))
							o.store(p, i0+16*i+r, j0+16*j+q, acc)
						}
					}
				}
			}
		}
		x.tilerelease()
	}
	return nil
}

// amxGemmBF16Model computes p's bf16 GEMM on rows [0, m) of a, as the
// bf16GemmFn implementations do, on the tile model: C tiles start from the
// bias (a stride-0 TILELOADD of 16 bias floats, zero-padded at N's edge;
// zeros for no bias), take one TDPBF16PS per 32 k per tile pair, and ReLU
// (x < 0 -> 0, NaN and -0 kept) is applied as they are stored.
func amxGemmBF16Model(p *PackedBF16, w *amxWeights, m int, a bf16Src, c []float32, ldc int, bias []float32, relu bool) error {
	n, k := p.N, p.K
	if err := amxCheckWeights(n, k, w); err != nil {
		return err
	}
	ld := w.kb * amxKBlock // bytes of a staged A row
	abuf := make([]byte, amxMR*ld)
	var bbuf [2][64]byte
	var cbuf [4][16 * 64]byte
	var x amxModel
	for i0 := 0; i0 < m; i0 += amxMR {
		mr := min(amxMR, m-i0)
		mt := (mr + 15) / 16
		clear(abuf)
		for r := 0; r < mr; r++ {
			off := (i0 + r) * a.lda
			for kk := 0; kk < k; kk++ {
				var h uint16
				if a.h != nil {
					h = a.h[off+kk]
				} else {
					h = f32ToBF16Hw(a.f[off+kk])
				}
				binary.LittleEndian.PutUint16(abuf[r*ld+2*kk:], h)
			}
		}
		cfg := amxConfig(mr)
		if err := x.ldtilecfg(cfg[:], 0); err != nil {
			return err
		}
		for j0 := 0; j0 < n; j0 += amxNR {
			nt := 1
			if n-j0 > 16 {
				nt = 2
			}
			for j := 0; j < nt; j++ {
				bbuf[j] = [64]byte{}
				for q := 0; q < min(16, n-j0-16*j) && bias != nil; q++ {
					binary.LittleEndian.PutUint32(bbuf[j][4*q:], math.Float32bits(bias[j0+16*j+q]))
				}
			}
			for i := 0; i < mt; i++ {
				for j := 0; j < nt; j++ {
					if err := x.tileloadd(amxTC+2*i+j, bbuf[j][:], 0, 0); err != nil {
						return err
					}
				}
			}
			for b := 0; b < w.kb; b++ {
				for i := 0; i < mt; i++ {
					if err := x.tileloadd(amxTA0+i, abuf, 16*i*ld+b*amxKBlock, ld); err != nil {
						return err
					}
				}
				for j := 0; j < nt; j++ {
					if err := x.tileloadd(amxTB0+j, w.data, w.bTile(j0+16*j, b), amxRowBytes); err != nil {
						return err
					}
				}
				for i := 0; i < mt; i++ {
					for j := 0; j < nt; j++ {
						if err := x.tdpbf16ps(amxTC+2*i+j, amxTA0+i, amxTB0+j); err != nil {
							return err
						}
					}
				}
			}
			for i := 0; i < mt; i++ {
				for j := 0; j < nt; j++ {
					if err := x.tilestored(cbuf[2*i+j][:], 0, 64, amxTC+2*i+j); err != nil {
						return err
					}
					for r := 0; r < min(16, mr-16*i); r++ {
						for q := 0; q < min(16, n-j0-16*j); q++ {
							y := math.Float32frombits(binary.LittleEndian.Uint32(cbuf[2*i+j][64*r+4*q:]))
							if relu && y < 0 {
								y = 0
							}
							c[(i0+16*i+r)*ldc+j0+16*j+q] = y
						}
					}
				}
			}
		}
		x.tilerelease()
	}
	return nil
}

// amxCheckWeights reports whether w was packed from weights of p's shape
// (a programmer error otherwise).
func amxCheckWeights(n, k int, w *amxWeights) error {
	if w.n != n || w.k != k {
		return fmt.Errorf("kernels: AMX weights are %dx%d, the GEMM's %dx%d", w.n, w.k, n, k)
	}
	return nil
}
