#pragma once

struct ProbeResult {
  int runtime_version;
  int driver_version;
  int device_count;
  int error;
  const char* error_name;
  const char* error_string;
};

ProbeResult probe_devices();
