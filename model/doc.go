// Package model is rq's in-memory form of a DLRM-family network and its
// forward pass: embedding bags, the bottom MLP, the feature interaction and
// the top MLP.
//
// A Network is built by modelio from a model file; a Runner executes it on
// Batches (from dataset) with a fixed number of threads, spreading each layer
// over the threads (so results do not depend on the thread count), and
// reports every layer's input and output to Observers (calibration, the
// numeric debugger, golden-file tests). Layer names are the tensor prefixes of
// the source model (emb_l.3, bot_l.0, top_l.4) plus "interaction".
//
// The numeric work is delegated to package kernels; model knows shapes,
// names and the order of operations.
package model
