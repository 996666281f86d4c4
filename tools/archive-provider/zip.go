package main

import (
	"archive/zip"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// Every entry gets the same timestamp so that the archive, and therefore the
// Lambda code hash, depends only on file names, contents and modes.
var entryTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

type namedContent struct{ name, content string }

type zipSpec struct {
	outputPath     string
	sourceDir      string
	sourceFile     string
	contents       []namedContent
	excludes       []string
	excludeSymDirs bool
	fileMode       string
}

type checksums struct {
	size                                            int64
	sha1, sha256, b64sha256, sha512, b64sha512, md5 string
}

type entry struct {
	name string
	mode fs.FileMode
	data []byte
}

func (s zipSpec) validate() error {
	n := 0
	for _, set := range []bool{s.sourceDir != "", s.sourceFile != "", len(s.contents) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("exactly one of source_dir, source_file, source_content or source blocks must be set")
	}
	if s.outputPath == "" {
		return errors.New("output_path must be set")
	}
	for _, p := range s.excludes {
		if !doublestar.ValidatePattern(p) {
			return fmt.Errorf("excludes: %q is not a valid pattern", p)
		}
	}
	return nil
}

func (s zipSpec) excluded(rel string) bool {
	for _, p := range s.excludes {
		if p == rel {
			return true
		}
		if ok, _ := doublestar.Match(p, rel); ok {
			return true
		}
	}
	return false
}

func (s zipSpec) collect() ([]entry, error) {
	var out []entry
	switch {
	case len(s.contents) > 0:
		for _, c := range s.contents {
			out = append(out, entry{c.name, 0o644, []byte(c.content)})
		}
	case s.sourceFile != "":
		data, err := os.ReadFile(s.sourceFile)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(s.sourceFile)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{filepath.Base(s.sourceFile), st.Mode().Perm(), data})
	default:
		if err := s.walk(s.sourceDir, "", &out); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (s zipSpec) walk(dir, prefix string, out *[]entry) error {
	items, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("source_dir: %w", err)
	}
	for _, it := range items {
		rel := it.Name()
		if prefix != "" {
			rel = prefix + "/" + it.Name()
		}
		if s.excluded(rel) {
			continue
		}
		full := filepath.Join(dir, it.Name())
		st, err := os.Stat(full) // follows symlinks, like the upstream provider
		if err != nil {
			return err
		}
		if st.IsDir() {
			if it.Type()&fs.ModeSymlink != 0 && s.excludeSymDirs {
				continue
			}
			if err := s.walk(full, rel, out); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		*out = append(*out, entry{rel, st.Mode().Perm(), data})
	}
	return nil
}

func writeZip(s zipSpec) (checksums, error) {
	entries, err := s.collect()
	if err != nil {
		return checksums{}, err
	}
	var forced fs.FileMode
	if s.fileMode != "" {
		m, err := strconv.ParseUint(s.fileMode, 8, 32)
		if err != nil {
			return checksums{}, fmt.Errorf("output_file_mode %q is not an octal mode", s.fileMode)
		}
		forced = fs.FileMode(m)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: entryTime}
		mode := e.mode
		if forced != 0 {
			mode = forced
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return checksums{}, err
		}
		if _, err := w.Write(e.data); err != nil {
			return checksums{}, err
		}
	}
	if err := zw.Close(); err != nil {
		return checksums{}, err
	}
	data := buf.Bytes()
	if err := os.MkdirAll(filepath.Dir(s.outputPath), 0o755); err != nil {
		return checksums{}, err
	}
	tmp := s.outputPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return checksums{}, err
	}
	if err := os.Rename(tmp, s.outputPath); err != nil {
		return checksums{}, err
	}
	return sum(data), nil
}

func sum(data []byte) checksums {
	h1 := sha1.Sum(data)
	h256 := sha256.Sum256(data)
	h512 := sha512.Sum512(data)
	hmd5 := md5.Sum(data)
	return checksums{
		size:      int64(len(data)),
		sha1:      hex.EncodeToString(h1[:]),
		sha256:    hex.EncodeToString(h256[:]),
		b64sha256: base64.StdEncoding.EncodeToString(h256[:]),
		sha512:    hex.EncodeToString(h512[:]),
		b64sha512: base64.StdEncoding.EncodeToString(h512[:]),
		md5:       hex.EncodeToString(hmd5[:]),
	}
}
