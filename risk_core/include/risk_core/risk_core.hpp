// Umbrella header for the risk_core C++17 engine.
#pragma once

#include "risk_core/backtest.hpp"
#include "risk_core/bars.hpp"
#include "risk_core/metrics.hpp"
#include "risk_core/pretrade.hpp"
#include "risk_core/sweep.hpp"
