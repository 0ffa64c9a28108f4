package handlers

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"sync"
	"syscall"
	"testing"
)

// guardedServer is a test server built with a chosen Config, served by the
// http.Server that serve uses (HTTPServer), with its log kept for inspection.
type guardedServer struct {
	*testServer
	srv  *Server
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newGuardedServer(t *testing.T, runJobs bool, mutate func(*Config)) *guardedServer {
	t.Helper()
	logs := &lockedBuffer{}
	l := startLiveServer(t, testServerOptions{config: mutate, logs: logs, limited: true})
	if runJobs {
		l.start()
	}
	return &guardedServer{testServer: &testServer{Server: l.Server, db: l.db, root: l.root, start: l.start}, srv: l.srv, logs: logs}
}

// Safetensors and torch files broken in one way each, built here the way the
// readers' own tests build them.

func safetensorsFile(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

// Pickle opcodes (protocol 2), enough to write what torch.save writes.
const (
	pProto, pGlobal, pMark, pBinunicode, pBinint = 0x80, 'c', '(', 'X', 'J'
	pTuple, pBinpersid, pNewfalse, pEmptyTuple   = 't', 'Q', 0x89, ')'
	pReduce, pEmptyDict, pSetitem, pStop         = 'R', '}', 's', '.'
)

type pickle struct{ bytes.Buffer }

func (p *pickle) op(b ...byte) *pickle { p.Write(b); return p }
func (p *pickle) str(s string) *pickle {
	p.WriteByte(pBinunicode)
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}
func (p *pickle) int(n int32) *pickle {
	p.WriteByte(pBinint)
	binary.Write(&p.Buffer, binary.LittleEndian, n)
	return p
}
func (p *pickle) global(module, name string) *pickle {
	p.WriteByte(pGlobal)
	p.WriteString(module + "\n" + name + "\n")
	return p
}

// floatTensorPickle is {"w": FloatTensor of 8 elements in storage "0"}.
func floatTensorPickle() []byte {
	p := (&pickle{}).op(pProto, 2, pEmptyDict).str("w")
	p.global("torch._utils", "_rebuild_tensor_v2").op(pMark)
	p.op(pMark).str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(8).op(pTuple, pBinpersid)
	p.int(0).op(pMark).int(8).op(pTuple).op(pMark).int(1).op(pTuple).op(pNewfalse)
	p.global("collections", "OrderedDict").op(pEmptyTuple, pReduce)
	p.op(pTuple, pReduce, pSetitem, pStop)
	return p.Bytes()
}

// osSystemPickle calls os.system("touch pwned"): it must be refused, never run.
func osSystemPickle() []byte {
	p := (&pickle{}).op(pProto, 2).global("os", "system").op(pMark).str("touch pwned").op(pTuple, pReduce, pStop)
	return p.Bytes()
}

func zipOf(t *testing.T, entries ...struct {
	name   string
	data   []byte
	method uint16
}) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zipEnt = struct {
	name   string
	data   []byte
	method uint16
}

type badFile struct {
	name string // file name, which picks the reader
	data []byte
	want string // part of the reason
}

func malformedFiles(t *testing.T) []badFile {
	f32 := make([]byte, 8)
	goodTorch := zipOf(t, zipEnt{"archive/data.pkl", floatTensorPickle(), zip.Store}, zipEnt{"archive/data/0", make([]byte, 32), zip.Store})
	return []badFile{
		{"short.safetensors", []byte{1, 2, 3}, "too short"},
		{"header-past-eof.safetensors", append(binary.LittleEndian.AppendUint64(nil, 5000), "{}"...), "header"},
		{"huge-length.safetensors", append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...), "exceeds the limit"},
		{"bad-json.safetensors", safetensorsFile(`{"w": {"dtype": "F32", "shape": [1], `, f32), "JSON"},
		{"not-object.safetensors", safetensorsFile(`[1, 2]`, nil), "object"},
		{"overlap.safetensors", safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32), "overlap"},
		{"size-mismatch.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32), "needs 12 bytes"},
		{"trailing.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32), "end"},
		{"bad-dtype.safetensors", safetensorsFile(`{"w":{"dtype":"X99","shape":[2],"data_offsets":[0,8]}}`, f32), "X99"},
		{"negative.safetensors", safetensorsFile(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32), "negative"},
		{"os-system.bin", zipOf(t, zipEnt{"archive/data.pkl", osSystemPickle(), zip.Store}), "os.system"},
		{"deflated.bin", zipOf(t, zipEnt{"archive/data.pkl", floatTensorPickle(), zip.Store}, zipEnt{"archive/data/0", make([]byte, 32), zip.Deflate}), "compressed"},
		{"truncated.pt", goodTorch[:len(goodTorch)/2], "truncated"},
		{"legacy.pt", append([]byte{pProto, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}, make([]byte, 64)...), "legacy"},
	}
}

// fullDisk writes n bytes, then fails every write as a full disk does.
type fullDisk struct {
	uploadWriter
	left int64
}

func (d *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if int64(len(p)) <= d.left {
		d.left -= int64(len(p))
		return d.uploadWriter.WriteAt(p, off)
	}
	n, _ := d.uploadWriter.WriteAt(p[:d.left], off)
	d.left = 0
	return n, &os.PathError{Op: "write", Path: "upload", Err: syscall.ENOSPC}
}
