// Package modelio reads and writes model files and builds model.Networks
// from them.
//
// Formats: safetensors (read and written, memory-mapped on read) and PyTorch
// checkpoints (torch.save zip files, read through a restricted unpickler that
// resolves only an allow-list of globals and never executes anything). A
// network is inferred from tensor names and shapes by a naming scheme; the
// schemes are a table (schemes in dlrm.go), so other layouts can be added
// beside facebookresearch/dlrm's.
//
// Memory: files are memory-mapped and their tensors used in place, so a
// model costs the pages it touches. Models larger than ResidentTableBytes
// run in bounded memory: touched pages are released (madvise
// MADV_DONTNEED, which keeps the data readable from the page cache) as a
// checkpoint's CRCs are checked, block by block as the quantized writer
// reads them, and, for the tables beyond the budget, after each batch
// pooled from them.
//
// Errors are *FormatError (malformed file: names the file, the tensor, what
// was expected), *UnsupportedError (well-formed but not handled) or
// *LimitError (past a budget of budget.go, listed in docs/limits.md).
package modelio
