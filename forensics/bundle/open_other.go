//go:build !unix

package bundle

// noFollow is 0 where the platform has no O_NOFOLLOW; the directory walk and
// the checksum of the bytes read still guard against swapped files.
const noFollow = 0
