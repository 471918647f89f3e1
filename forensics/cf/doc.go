// Package cf is Compression Forensics: it finds the layers and positions
// of an incident whose activations look unlike the model's behaviour on
// benign inputs, judged by how well they compress and by the bundle's
// sketch statistics, so that the later, costly analysis (CCA) searches
// there first.
//
// # Features
//
// For every recorded hook and position CF measures (Extract):
//
//   - compression (the Compression signal): the position's activation is
//     quantised (Int8 with the row's own scale max|x|/127, or FP16) and
//     compressed with zstd at a fixed level; the feature is compressed/raw.
//     A row whose values are dominated by a few large ones (a neuron that
//     fires far above the rest, an attention head that looks at one token)
//     quantises to mostly small codes and compresses well; a diffuse row
//     does not. Values are rounded to float16 first, as bundles store them.
//   - norm (Norm): from the bundle's sketch, the RMS, the largest
//     magnitude, the mean and the crest factor (largest magnitude / RMS).
//   - projection (Projection): the sketch's seeded random projection to k
//     dimensions.
//
// Besides the recorded hooks, CF derives what each block wrote into the
// residual stream, blocks.N.delta_attn = hook_resid_mid - hook_resid_pre
// and blocks.N.delta_mlp = hook_resid_post - hook_resid_mid, so that a
// layer bundle (which stores the residual stream only) has per-block
// features too. The residual stream itself is measured but, by default,
// not scored: it carries every earlier block's writes, so an anomaly
// written at block L would show at every block after L.
//
// # Scores
//
// A Baseline holds each feature's distribution over benign runs of the
// model, per position class (each early position has its own, later
// positions share one), summarised by the median and the median absolute
// deviation (gonum/stat). A feature's robust z-score is (x - median) /
// (1.4826 MAD). A signal's score of a layer at a position is the mean of
// the top few |z| of the layer's features there; the signals combine by
// calibration: each signal's score is compared, as a robust z of
// log(1 + score), with that signal's layer scores over the baseline's own
// runs, and a layer takes its most unusual signal. A layer's score is its
// highest position; a run's, its highest layer. Reports show every
// signal's layer scores alone as well.
//
// # The baseline file (.fxbase)
//
// A baseline is stored as a small text header followed by JSON:
//
//	fx-baseline/1\n
//	sha256 <64 lowercase hex digits> <payload length in bytes>\n
//	<payload: the Baseline as one JSON object>
//
// The first line names the format version; a reader refuses other
// versions (ErrUnsupported). The second holds the sha256 and the length
// of the payload, which a reader checks before it decodes anything
// (ErrCorrupt on a mismatch, as for a truncated file). The payload's
// fields are those of Baseline: the model's identity (its sha256s are
// compared with a bundle's), the number of layers, the sketch settings
// (the projections of a bundle and of its baseline must use the same k
// and seed), the compression settings, the corpus size, the position
// classes (min_samples, cutoff), every feature's distributions
// ({"hook", "stat", "layer", "classes": {"0": {"n", "median", "mad",
// "mean_ad"}, ..., "tail": ..., "all": ...}}), the scoring settings and
// the calibration. Unknown fields are errors, so any change of the payload
// is a new version. Python reads one with:
//
//	head, digest, payload = open(p, "rb").read().split(b"\n", 2)
//	baseline = json.loads(payload)
package cf
