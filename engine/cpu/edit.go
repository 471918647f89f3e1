package cpu

import "github.com/modelforensics/fx/engine"

// Edit implements engine.Backend: it changes t's values in place.
func (b *Backend) Edit(t *engine.Tensor, e engine.Edit) {
	must(engine.CheckEdit(t, e))
	data := t.Host()
	var src []float32
	if e.Source != nil {
		src = b.ToHost(e.Source)
	}
	d, ts, ss := e.Dims, e.Strides, e.SourceStrides
	for i0 := range d[0] {
		for i1 := range d[1] {
			for i2 := range d[2] {
				for i3 := range d[3] {
					off := e.Offset + i0*ts[0] + i1*ts[1] + i2*ts[2] + i3*ts[3]
					soff := e.SourceOffset + i0*ss[0] + i1*ss[1] + i2*ss[2] + i3*ss[3]
					for i4 := range d[4] {
						at := off + i4*ts[4]
						v := e.Value
						if src != nil {
							v = src[soff+i4*ss[4]]
						}
						switch e.Mode {
						case engine.EditZero:
							data[at] = 0
						case engine.EditSet:
							data[at] = v
						case engine.EditAdd:
							data[at] += v
						case engine.EditScale:
							data[at] *= e.Value
						}
					}
				}
			}
		}
	}
}
