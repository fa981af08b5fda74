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
// Errors are *FormatError (malformed file: names the file, the tensor, what
// was expected) or *UnsupportedError (well-formed but not handled).
package modelio
