//go:build unix

package bundle

import "syscall"

// noFollow makes opening a symbolic link fail, so a file swapped for a link
// after the directory walk is not followed.
const noFollow = syscall.O_NOFOLLOW
