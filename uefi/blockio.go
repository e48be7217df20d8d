package uefi

import (
	"fmt"
	"unsafe"
)

// BlockIoProtocolGUID is EFI_BLOCK_IO_PROTOCOL_GUID.
var BlockIoProtocolGUID = NewGUID(0x964e5b21, 0x6459, 0x11d2, [8]byte{0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b})

// BlockIoProtocol is EFI_BLOCK_IO_PROTOCOL (UEFI 2.10 §13.9).
type BlockIoProtocol struct {
	Revision    uint64
	Media       uintptr // *BlockIoMedia
	Reset       uintptr
	ReadBlocks  uintptr
	WriteBlocks uintptr
	FlushBlocks uintptr
}

// BlockIoMedia is EFI_BLOCK_IO_MEDIA, up to revision 3's fields.
type BlockIoMedia struct {
	MediaID                          uint32
	RemovableMedia                   bool
	MediaPresent                     bool
	LogicalPartition                 bool
	ReadOnly                         bool
	WriteCaching                     bool
	BlockSize                        uint32
	IoAlign                          uint32
	LastBlock                        uint64
	LowestAlignedLba                 uint64 // revision 2 and later
	LogicalBlocksPerPhysicalBlock    uint32 // revision 2 and later
	OptimalTransferLengthGranularity uint32 // revision 3 and later
}

// BlockIo is a device's Block IO protocol. Transfers go through a bounce
// buffer of firmware pages, which meets any IoAlign the device asks for and
// keeps Go memory out of the device's DMA.
type BlockIo struct {
	Handle Handle
	p      *BlockIoProtocol
	addr   uintptr

	bounce     uintptr
	bounceSize int
}

// OpenBlockIo gets the Block IO protocol of h. The firmware's driver keeps
// managing the device; this only borrows its interface.
func OpenBlockIo(h Handle) (*BlockIo, error) {
	iface, err := HandleProtocol(h, &BlockIoProtocolGUID)
	if err != nil {
		return nil, err
	}
	return &BlockIo{Handle: h, p: at[BlockIoProtocol](iface), addr: iface}, nil
}

// Media returns the device's current media description. Read it afresh:
// the MediaID changes when the media does.
func (b *BlockIo) Media() BlockIoMedia {
	if b.p.Media == 0 {
		return BlockIoMedia{}
	}
	m := *at[BlockIoMedia](b.p.Media)
	if b.p.Revision < 0x20001 {
		m.LowestAlignedLba, m.LogicalBlocksPerPhysicalBlock, m.OptimalTransferLengthGranularity = 0, 0, 0
	} else if b.p.Revision < 0x2001f {
		m.OptimalTransferLengthGranularity = 0
	}
	return m
}

// BlockSize is the media's block size in bytes.
func (b *BlockIo) BlockSize() int { return int(b.Media().BlockSize) }

// Blocks is the number of blocks on the media.
func (b *BlockIo) Blocks() uint64 { return b.Media().LastBlock + 1 }

// buffer returns a bounce buffer of at least n bytes.
func (b *BlockIo) buffer(n int) ([]byte, uintptr, error) {
	if n > b.bounceSize {
		if b.bounce != 0 {
			FreePages(b.bounce, b.bounceSize)
			b.bounce, b.bounceSize = 0, 0
		}
		size := (n + PageSize - 1) &^ (PageSize - 1)
		addr, err := AllocatePages(size)
		if err != nil {
			return nil, 0, err
		}
		b.bounce, b.bounceSize = addr, size
	}
	return unsafe.Slice(at[byte](b.bounce), n), b.bounce, nil
}

// check validates a transfer of len(buf) bytes at lba against the media.
func (b *BlockIo) check(op string, lba uint64, buf []byte) (BlockIoMedia, error) {
	m := b.Media()
	switch {
	case !m.MediaPresent:
		return m, fmt.Errorf("uefi: %s on handle %#x: no media", op, uintptr(b.Handle))
	case m.BlockSize == 0 || len(buf)%int(m.BlockSize) != 0:
		return m, fmt.Errorf("uefi: %s of %d bytes on handle %#x: not a multiple of the block size %d", op, len(buf), uintptr(b.Handle), m.BlockSize)
	case lba+uint64(len(buf))/uint64(m.BlockSize) > m.LastBlock+1:
		return m, fmt.Errorf("uefi: %s of %d blocks at %d on handle %#x: past the last block %d", op, len(buf)/int(m.BlockSize), lba, uintptr(b.Handle), m.LastBlock)
	}
	return m, nil
}

// ReadBlocks reads len(buf) bytes (whole blocks) starting at block lba.
func (b *BlockIo) ReadBlocks(lba uint64, buf []byte) error {
	m, err := b.check("ReadBlocks", lba, buf)
	if err != nil || len(buf) == 0 {
		return err
	}
	tmp, addr, err := b.buffer(len(buf))
	if err != nil {
		return err
	}
	if err := Call(b.p.ReadBlocks, b.addr, uintptr(m.MediaID), uintptr(lba), uintptr(len(buf)), addr).Err(); err != nil {
		return fmt.Errorf("uefi: ReadBlocks(%d bytes at block %d) on handle %#x: %w", len(buf), lba, uintptr(b.Handle), err)
	}
	copy(buf, tmp)
	return nil
}

// WriteBlocks writes buf (whole blocks) starting at block lba.
func (b *BlockIo) WriteBlocks(lba uint64, buf []byte) error {
	m, err := b.check("WriteBlocks", lba, buf)
	if err != nil || len(buf) == 0 {
		return err
	}
	if m.ReadOnly {
		return fmt.Errorf("uefi: WriteBlocks on handle %#x: %w", uintptr(b.Handle), WriteProtected)
	}
	tmp, addr, err := b.buffer(len(buf))
	if err != nil {
		return err
	}
	copy(tmp, buf)
	if err := Call(b.p.WriteBlocks, b.addr, uintptr(m.MediaID), uintptr(lba), uintptr(len(buf)), addr).Err(); err != nil {
		return fmt.Errorf("uefi: WriteBlocks(%d bytes at block %d) on handle %#x: %w", len(buf), lba, uintptr(b.Handle), err)
	}
	return nil
}

// FlushBlocks makes written data durable on the device.
func (b *BlockIo) FlushBlocks() error {
	if err := Call(b.p.FlushBlocks, b.addr).Err(); err != nil {
		return fmt.Errorf("uefi: FlushBlocks on handle %#x: %w", uintptr(b.Handle), err)
	}
	return nil
}

// Close frees the bounce buffer.
func (b *BlockIo) Close() {
	if b.bounce != 0 {
		FreePages(b.bounce, b.bounceSize)
		b.bounce, b.bounceSize = 0, 0
	}
}
