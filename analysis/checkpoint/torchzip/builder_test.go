package torchzip

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"testing"
)

// pickleBuilder writes pickle opcodes by hand, so that tests can build both
// what torch.save writes and what it never would.
type pickleBuilder struct{ bytes.Buffer }

func newPickle() *pickleBuilder {
	p := &pickleBuilder{}
	p.op(opProto, 2)
	return p
}

func (p *pickleBuilder) op(b ...byte) *pickleBuilder { p.Write(b); return p }

func (p *pickleBuilder) str(s string) *pickleBuilder {
	p.WriteByte(opBinunicode)
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pickleBuilder) int(n int32) *pickleBuilder {
	p.WriteByte(opBinint)
	binary.Write(&p.Buffer, binary.LittleEndian, n)
	return p
}

func (p *pickleBuilder) global(module, name string) *pickleBuilder {
	p.WriteByte(opGlobal)
	p.WriteString(module + "\n" + name + "\n")
	return p
}

func (p *pickleBuilder) ints(ns []int32) *pickleBuilder {
	p.op(opMark)
	for _, n := range ns {
		p.int(n)
	}
	return p.op(opTuple)
}

// tensor pushes _rebuild_tensor_v2(storage(key), offset, shape, stride, False,
// OrderedDict()) as torch.save writes it.
func (p *pickleBuilder) tensor(storageClass, key string, numel, offset int32, shape, stride []int32) *pickleBuilder {
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.op(opMark).str("storage").global("torch", storageClass).str(key).str("cpu").int(numel).op(opTuple, opBinpersid)
	p.int(offset).ints(shape).ints(stride).op(opNewfalse)
	p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	return p.op(opTuple, opReduce)
}

func (p *pickleBuilder) stop() []byte { return append(p.Bytes(), opStop) }

// onePickle is {name: tensor} with the tensor as described.
func onePickle(name, storageClass, key string, numel, offset int32, shape, stride []int32) []byte {
	p := newPickle().op(opEmptyDict).str(name)
	return p.tensor(storageClass, key, numel, offset, shape, stride).op(opSetitem).stop()
}

type zipEntry struct {
	name   string
	data   []byte
	method uint16 // zip.Store or zip.Deflate
}

// buildZip writes entries as a zip archive, as torch.save lays them out.
func buildZip(tb testing.TB, entries ...zipEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// torchZip is an archive with data.pkl and storages "0", "1", ... of the given sizes.
func torchZip(tb testing.TB, pkl []byte, storageBytes ...int) []byte {
	tb.Helper()
	entries := []zipEntry{{name: "archive/data.pkl", data: pkl}}
	for i, n := range storageBytes {
		entries = append(entries, zipEntry{name: "archive/data/" + string(rune('0'+i)), data: make([]byte, n)})
	}
	entries = append(entries, zipEntry{name: "archive/version", data: []byte("3\n")})
	return buildZip(tb, entries...)
}
