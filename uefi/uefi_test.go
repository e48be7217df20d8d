package uefi

import (
	"testing"
	"unsafe"
)

// Offsets from the UEFI 2.10 specification (64-bit).
func TestTableOffsets(t *testing.T) {
	var st SystemTable
	var bs BootServices
	var rt RuntimeServices
	var li LoadedImage
	var p PciIoProtocol
	var snp SimpleNetworkProtocol
	var mode SimpleNetworkMode
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"SystemTable.ConOut", unsafe.Offsetof(st.ConOut), 64},
		{"SystemTable.RuntimeServices", unsafe.Offsetof(st.RuntimeServices), 88},
		{"SystemTable.BootServices", unsafe.Offsetof(st.BootServices), 96},
		{"SystemTable.ConfigurationTable", unsafe.Offsetof(st.ConfigurationTable), 112},
		{"BootServices.AllocatePages", unsafe.Offsetof(bs.AllocatePages), 40},
		{"BootServices.HandleProtocol", unsafe.Offsetof(bs.HandleProtocol), 152},
		{"BootServices.LoadImage", unsafe.Offsetof(bs.LoadImage), 200},
		{"BootServices.Exit", unsafe.Offsetof(bs.Exit), 216},
		{"BootServices.Stall", unsafe.Offsetof(bs.Stall), 248},
		{"BootServices.SetWatchdogTimer", unsafe.Offsetof(bs.SetWatchdogTimer), 256},
		{"BootServices.OpenProtocol", unsafe.Offsetof(bs.OpenProtocol), 280},
		{"BootServices.LocateHandleBuffer", unsafe.Offsetof(bs.LocateHandleBuffer), 312},
		{"BootServices.LocateProtocol", unsafe.Offsetof(bs.LocateProtocol), 320},
		{"BootServices.CreateEventEx", unsafe.Offsetof(bs.CreateEventEx), 368},
		{"RuntimeServices.GetTime", unsafe.Offsetof(rt.GetTime), 24},
		{"RuntimeServices.ResetSystem", unsafe.Offsetof(rt.ResetSystem), 104},
		{"LoadedImage.LoadOptionsSize", unsafe.Offsetof(li.LoadOptionsSize), 48},
		{"LoadedImage.ImageBase", unsafe.Offsetof(li.ImageBase), 64},
		{"LoadedImage.Unload", unsafe.Offsetof(li.Unload), 88},
		{"PciIo.MemRead", unsafe.Offsetof(p.MemRead), 16},
		{"PciIo.PciRead", unsafe.Offsetof(p.PciRead), 48},
		{"PciIo.Map", unsafe.Offsetof(p.Map), 72},
		{"PciIo.AllocateBuffer", unsafe.Offsetof(p.AllocateBuffer), 88},
		{"PciIo.GetBarAttributes", unsafe.Offsetof(p.GetBarAttributes), 128},
		{"PciIo.RomImage", unsafe.Offsetof(p.RomImage), 152},
		{"BootServices.DisconnectController", unsafe.Offsetof(bs.DisconnectController), 272},
		{"BootServices.OpenProtocolInformation", unsafe.Offsetof(bs.OpenProtocolInformation), 296},
		{"SNP.Start", unsafe.Offsetof(snp.Start), 8},
		{"SNP.ReceiveFilters", unsafe.Offsetof(snp.ReceiveFilters), 48},
		{"SNP.GetStatus", unsafe.Offsetof(snp.GetStatus), 88},
		{"SNP.Receive", unsafe.Offsetof(snp.Receive), 104},
		{"SNP.Mode", unsafe.Offsetof(snp.Mode), 120},
		{"SNPMode.MCastFilter", unsafe.Offsetof(mode.MCastFilter), 40},
		{"SNPMode.CurrentAddress", unsafe.Offsetof(mode.CurrentAddress), 552},
		{"SNPMode.IfType", unsafe.Offsetof(mode.IfType), 648},
		{"SNPMode.MediaPresent", unsafe.Offsetof(mode.MediaPresent), 652},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestGUIDString(t *testing.T) {
	if got, want := LoadedImageProtocolGUID.String(), "5b1b31a1-9562-11d2-8e3f-00a0c969723b"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// The in-memory layout is little-endian in the first three fields.
	if LoadedImageProtocolGUID[0] != 0xa1 || LoadedImageProtocolGUID[4] != 0x62 || LoadedImageProtocolGUID[8] != 0x8e {
		t.Errorf("layout %x", LoadedImageProtocolGUID[:])
	}
}

func TestUCS2(t *testing.T) {
	u := UCS2("héllo\n€😀")
	if u[len(u)-1] != 0 || u[1] != 'é' || u[6] != '€' || u[7] != 0xfffd {
		t.Errorf("UCS2 = %x", u)
	}
	if got := FromUCS2(u); got != "héllo\n€\ufffd" {
		t.Errorf("round trip %q", got)
	}
	if got := UCS2At(uintptr(unsafe.Pointer(&u[0])), 3); got != "hél" {
		t.Errorf("UCS2At limited to 3 = %q", got)
	}
}

func TestStatus(t *testing.T) {
	if NotFound.Err() == nil || Success.Err() != nil || Status(1).Err() != nil {
		t.Error("Err misclassifies")
	}
	if NotFound.Error() != "EFI_NOT_FOUND" || Status(errorBit|99).String() != "EFI error 99" {
		t.Errorf("strings: %v %v", NotFound, Status(errorBit|99))
	}
}

func TestACPIMemoryLength(t *testing.T) {
	q := make([]byte, 46)
	q[0], q[1], q[3] = 0x8a, 43, 0 // QWORD, length 43, memory
	q[38] = 0x00
	q[39] = 0x40 // 0x4000 bytes
	list := append(q, 0x79, 0)
	if n, err := acpiMemoryLength(list); err != nil || n != 0x4000 {
		t.Errorf("got %#x, %v", n, err)
	}
	if n, err := acpiMemoryLength([]byte{0x79, 0}); err != nil || n != 0 {
		t.Errorf("empty list: %#x, %v", n, err)
	}
	if _, err := acpiMemoryLength([]byte{0x8a, 43, 0}); err == nil {
		t.Error("truncated descriptor accepted")
	}
}
