// Package model is rq's in-memory form of a DLRM-family network and its
// forward pass: embedding bags, the bottom MLP, the feature interaction and
// the top MLP.
//
// A Network is built by modelio from a model file; a Runner executes it on
// Batches (from dataset) with a fixed number of threads, and results do not
// depend on the thread count. With Observers (calibration, the numeric
// debugger, golden-file tests), which see every layer's input and output
// for the whole batch, it runs layer by layer, each layer spread over the
// threads. Without them it carries chunks of rows through the whole
// network so activations stay in cache (stream.go), or, when the MLP is
// large or a layer takes statistics over the whole batch, at least through
// the bags and the interaction; the results are the same bit for bit. Layer names are the tensor prefixes of
// the source model (emb_l.3, bot_l.0, top_l.4) plus "interaction".
//
// The numeric work is delegated to package kernels; model knows shapes,
// names and the order of operations.
package model
