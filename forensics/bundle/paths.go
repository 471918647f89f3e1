package bundle

import (
	"fmt"
	"regexp"
	"strings"
)

// activationsRe matches the names of activation files.
var activationsRe = regexp.MustCompile(`^activations/(embed|final|block_[0-9]{2,7})\.npz$`)

// CheckPath reports whether p may name a file of a bundle (besides the
// manifest): a relative, slash-separated path without "..", that is one of
// the files of fx-bundle/1. The error says what is wrong with it.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty path", ErrInvalid)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%w: path %q holds a NUL byte", ErrInvalid, p)
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) > 1 && p[1] == ':'):
		return fmt.Errorf("%w: path %q is absolute", ErrInvalid, p)
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("%w: path %q holds a backslash", ErrInvalid, p)
	}
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "..":
			return fmt.Errorf("%w: path %q escapes the bundle (..)", ErrInvalid, p)
		case ".", "":
			return fmt.Errorf("%w: path %q is not clean", ErrInvalid, p)
		}
	}
	switch p {
	case InputsName, ExternalCallsName, StateDiffsName, MetricsName:
		return nil
	}
	if !activationsRe.MatchString(p) {
		return fmt.Errorf("%w: path %q is not a file of %s", ErrInvalid, p, Format)
	}
	return nil
}
