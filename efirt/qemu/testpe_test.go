//go:build linux

package qemu

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"unicode/utf16"
)

// How a test program ends after printing.
const (
	endReturn = iota // return EFI_SUCCESS to the firmware
	endCrash         // execute ud2
	endHang          // spin forever
)

// testProgram builds a minimal x86-64 EFI application that prints msg on
// the firmware console with ConOut->OutputString and then ends as end says.
// It lets the tests boot a real program without a compiler for EFI.
func testProgram(msg string, end int) []byte {
	code := []byte{
		0x48, 0x83, 0xEC, 0x28, // sub rsp, 40: shadow space, 16-byte alignment
		0x48, 0x8B, 0x4A, 0x40, // mov rcx, [rdx+0x40]: SystemTable->ConOut
		0x48, 0x8D, 0x15, 0, 0, 0, 0, // lea rdx, [rip+msg]
	}
	leaEnd := len(code)
	code = append(code, 0xFF, 0x51, 0x08) // call [rcx+8]: ConOut->OutputString
	switch end {
	case endCrash:
		code = append(code, 0x0F, 0x0B) // ud2
	case endHang:
		code = append(code, 0xEB, 0xFE) // jmp $
	}
	code = append(code,
		0x31, 0xC0, // xor eax, eax: EFI_SUCCESS
		0x48, 0x83, 0xC4, 0x28, // add rsp, 40
		0xC3, // ret
	)
	if len(code)%2 != 0 {
		code = append(code, 0x90) // align the UTF-16 string
	}
	binary.LittleEndian.PutUint32(code[leaEnd-4:], uint32(len(code)-leaEnd))
	for _, u := range utf16.Encode([]rune(msg)) {
		code = binary.LittleEndian.AppendUint16(code, u)
	}
	code = append(code, 0, 0)

	const (
		fileAlign = 0x200
		secAlign  = 0x1000
	)
	raw := (len(code) + fileAlign - 1) &^ (fileAlign - 1)
	virt := (len(code) + secAlign - 1) &^ (secAlign - 1)
	var b bytes.Buffer
	dos := make([]byte, 0x40)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], 0x40) // e_lfanew
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	// No relocations are needed (the code is position independent), and
	// without IMAGE_FILE_RELOCS_STRIPPED the firmware may load it anywhere.
	binary.Write(&b, binary.LittleEndian, pe.FileHeader{
		Machine:              pe.IMAGE_FILE_MACHINE_AMD64,
		NumberOfSections:     1,
		SizeOfOptionalHeader: 240,
		Characteristics:      pe.IMAGE_FILE_EXECUTABLE_IMAGE | pe.IMAGE_FILE_LARGE_ADDRESS_AWARE,
	})
	binary.Write(&b, binary.LittleEndian, pe.OptionalHeader64{
		Magic:               0x20b,
		SizeOfCode:          uint32(raw),
		AddressOfEntryPoint: secAlign,
		BaseOfCode:          secAlign,
		ImageBase:           0x400000,
		SectionAlignment:    secAlign,
		FileAlignment:       fileAlign,
		SizeOfImage:         uint32(secAlign + virt),
		SizeOfHeaders:       fileAlign,
		Subsystem:           pe.IMAGE_SUBSYSTEM_EFI_APPLICATION,
		NumberOfRvaAndSizes: 16,
	})
	var name [8]uint8
	copy(name[:], ".text")
	binary.Write(&b, binary.LittleEndian, pe.SectionHeader32{
		Name:             name,
		VirtualSize:      uint32(len(code)),
		VirtualAddress:   secAlign,
		SizeOfRawData:    uint32(raw),
		PointerToRawData: fileAlign,
		Characteristics:  pe.IMAGE_SCN_CNT_CODE | pe.IMAGE_SCN_MEM_EXECUTE | pe.IMAGE_SCN_MEM_READ,
	})
	out := make([]byte, fileAlign+raw)
	copy(out, b.Bytes())
	copy(out[fileAlign:], code)
	return out
}
