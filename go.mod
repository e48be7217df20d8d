module github.com/ociboot/ociboot

go 1.26.8

require github.com/usbarmory/tamago v1.26.5 // indirect
