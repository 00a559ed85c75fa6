"""The iOS Swift package template (Package.swift, Sources/, Tests/) shipped as package data;
`edgeslm package BUNDLE --ios DIR` (edgeslm.package.ios) copies it and adds the bundle as a resource."""
