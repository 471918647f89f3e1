package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// NamedYAML is a YAML document and the name its errors carry.
type NamedYAML struct {
	// Name names the document in errors (a file name).
	Name string
	// Data is the YAML text.
	Data []byte
}

// DecodeSection decodes the top-level section key of each document in
// order into dst, so later documents override earlier ones (default.yaml's
// text, then a user's file). Empty documents and documents without the
// section are skipped; unknown keys inside the section are errors naming
// the document. Other sections are left to their own modules.
func DecodeSection(key string, dst any, docs ...NamedYAML) error {
	for _, d := range docs {
		if len(bytes.TrimSpace(d.Data)) == 0 {
			continue
		}
		var top map[string]yaml.Node
		if err := yaml.Unmarshal(d.Data, &top); err != nil {
			return fmt.Errorf("config %s: %w", d.Name, err)
		}
		node, ok := top[key]
		if !ok {
			continue
		}
		section, err := yaml.Marshal(&node)
		if err != nil {
			return fmt.Errorf("config %s: %s: %w", d.Name, key, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(section))
		dec.KnownFields(true)
		if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config %s: %s: %w", d.Name, key, err)
		}
	}
	return nil
}
