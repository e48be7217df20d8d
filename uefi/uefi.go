// Package uefi binds the UEFI system table, boot and runtime services and
// protocols for ordinary goroutines of a program running on efirt. Every
// firmware function is reached through efirt.Call, so it runs on the
// firmware stack and is safe from any goroutine.
package uefi

import (
	"fmt"
	"unsafe"

	"github.com/ociboot/ociboot/efirt"
)

// Status is an EFI_STATUS.
type Status uintptr

const errorBit = 1 << 63

// Status codes (UEFI 2.10 appendix D).
const (
	Success           Status = 0
	LoadError         Status = errorBit | 1
	InvalidParameter  Status = errorBit | 2
	Unsupported       Status = errorBit | 3
	BadBufferSize     Status = errorBit | 4
	BufferTooSmall    Status = errorBit | 5
	NotReady          Status = errorBit | 6
	DeviceError       Status = errorBit | 7
	WriteProtected    Status = errorBit | 8
	OutOfResources    Status = errorBit | 9
	NotFound          Status = errorBit | 14
	AccessDenied      Status = errorBit | 15
	Timeout           Status = errorBit | 18
	Aborted           Status = errorBit | 21
	SecurityViolation Status = errorBit | 26
)

var statusNames = map[Status]string{
	Success: "EFI_SUCCESS", LoadError: "EFI_LOAD_ERROR", InvalidParameter: "EFI_INVALID_PARAMETER",
	Unsupported: "EFI_UNSUPPORTED", BadBufferSize: "EFI_BAD_BUFFER_SIZE", BufferTooSmall: "EFI_BUFFER_TOO_SMALL",
	NotReady: "EFI_NOT_READY", DeviceError: "EFI_DEVICE_ERROR", WriteProtected: "EFI_WRITE_PROTECTED",
	OutOfResources: "EFI_OUT_OF_RESOURCES", NotFound: "EFI_NOT_FOUND", AccessDenied: "EFI_ACCESS_DENIED",
	Timeout: "EFI_TIMEOUT", Aborted: "EFI_ABORTED", SecurityViolation: "EFI_SECURITY_VIOLATION",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	if s&errorBit != 0 {
		return fmt.Sprintf("EFI error %d", uintptr(s)&^errorBit)
	}
	return fmt.Sprintf("EFI warning %d", uintptr(s))
}

// Error makes a failed Status an error.
func (s Status) Error() string { return s.String() }

// Err returns nil for success (and warnings), the Status otherwise.
func (s Status) Err() error {
	if s&errorBit == 0 {
		return nil
	}
	return s
}

// TableHeader is EFI_TABLE_HEADER.
type TableHeader struct {
	Signature  uint64
	Revision   uint32
	HeaderSize uint32
	CRC32      uint32
	Reserved   uint32
}

// SystemTable is EFI_SYSTEM_TABLE.
type SystemTable struct {
	Hdr                  TableHeader
	FirmwareVendor       uintptr // *CHAR16
	FirmwareRevision     uint32
	_                    uint32
	ConsoleInHandle      uintptr
	ConIn                uintptr
	ConsoleOutHandle     uintptr
	ConOut               uintptr
	StandardErrorHandle  uintptr
	StdErr               uintptr
	RuntimeServices      uintptr // *RuntimeServices
	BootServices         uintptr // *BootServices
	NumberOfTableEntries uintptr
	ConfigurationTable   uintptr
}

// BootServices is EFI_BOOT_SERVICES: function pointers in table order.
type BootServices struct {
	Hdr                                 TableHeader
	RaiseTPL, RestoreTPL                uintptr
	AllocatePages, FreePages            uintptr
	GetMemoryMap                        uintptr
	AllocatePool, FreePool              uintptr
	CreateEvent, SetTimer, WaitForEvent uintptr
	SignalEvent, CloseEvent, CheckEvent uintptr
	InstallProtocolInterface            uintptr
	ReinstallProtocolInterface          uintptr
	UninstallProtocolInterface          uintptr
	HandleProtocol                      uintptr
	Reserved                            uintptr
	RegisterProtocolNotify              uintptr
	LocateHandle, LocateDevicePath      uintptr
	InstallConfigurationTable           uintptr
	LoadImage, StartImage, Exit         uintptr
	UnloadImage, ExitBootServices       uintptr
	GetNextMonotonicCount, Stall        uintptr
	SetWatchdogTimer                    uintptr
	ConnectController                   uintptr
	DisconnectController                uintptr
	OpenProtocol, CloseProtocol         uintptr
	OpenProtocolInformation             uintptr
	ProtocolsPerHandle                  uintptr
	LocateHandleBuffer, LocateProtocol  uintptr
	InstallMultipleProtocolInterfaces   uintptr
	UninstallMultipleProtocolInterfaces uintptr
	CalculateCrc32, CopyMem, SetMem     uintptr
	CreateEventEx                       uintptr
}

// RuntimeServices is EFI_RUNTIME_SERVICES.
type RuntimeServices struct {
	Hdr                                     TableHeader
	GetTime, SetTime                        uintptr
	GetWakeupTime, SetWakeupTime            uintptr
	SetVirtualAddressMap, ConvertPointer    uintptr
	GetVariable, GetNextVariableName        uintptr
	SetVariable                             uintptr
	GetNextHighMonotonicCount               uintptr
	ResetSystem                             uintptr
	UpdateCapsule, QueryCapsuleCapabilities uintptr
	QueryVariableInfo                       uintptr
}

func at[T any](addr uintptr) *T { return (*T)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))) }

// ST returns the system table.
func ST() *SystemTable { return at[SystemTable](efirt.SystemTable()) }

// BS returns the boot services table.
func BS() *BootServices { return at[BootServices](ST().BootServices) }

// RT returns the runtime services table.
func RT() *RuntimeServices { return at[RuntimeServices](ST().RuntimeServices) }

// ImageHandle returns this image's handle.
func ImageHandle() Handle { return Handle(efirt.ImageHandle()) }

// Handle is an EFI_HANDLE.
type Handle uintptr

// Call calls a firmware function and returns its status.
//
// Pointers passed as uintptr(unsafe.Pointer(&x)) right in the call move x
// to the heap (go:uintptrescapes): a goroutine stack can be moved or
// shrunk at any function prologue before the call reaches the firmware,
// and the firmware would then write into a stack that is no longer there.
//
//go:uintptrescapes
func Call(fn uintptr, args ...uintptr) Status { return Status(efirt.Call(fn, args...)) }

// Memory returns the n bytes at addr, firmware-owned memory such as pages
// from AllocatePages, as a slice.
func Memory(addr uintptr, n int) []byte { return unsafe.Slice(at[byte](addr), n) }
