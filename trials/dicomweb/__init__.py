"""DICOMweb (PS3.18) endpoints, scoped to what the person may see."""
