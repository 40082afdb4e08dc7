package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// IDLen is the length of a configuration id in hex digits.
const IDLen = 12

// idFiles hashes every file a configuration reads (users_files), in the
// order they are read, into the configuration's id.
type idFiles struct {
	files Files
	h     hash.Hash
}

// newIDFiles starts an id with the configuration file's own contents.
// Each piece is length-prefixed so that moving bytes from one file to the
// next changes the id.
func newIDFiles(data []byte, files Files) *idFiles {
	f := &idFiles{files: files, h: sha256.New()}
	f.add("", data)
	return f
}

func (f *idFiles) add(name string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	f.h.Write(n[:])
	f.h.Write([]byte(name))
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	f.h.Write(n[:])
	f.h.Write(data)
}

func (f *idFiles) ReadFile(name string) ([]byte, error) {
	data, err := f.files.ReadFile(name)
	if err == nil {
		f.add(name, data)
	}
	return data, err
}

// id is the first IDLen hex digits of the SHA-256 over everything read.
func (f *idFiles) id() string {
	return hex.EncodeToString(f.h.Sum(nil))[:IDLen]
}
