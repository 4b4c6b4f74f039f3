// Intentionally empty: the module only carries CFuzzDriver.h; libFuzzer defines the function.
#include "CFuzzDriver.h"
