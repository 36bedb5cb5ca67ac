#!/usr/bin/env node
// Entry point: configuration from the environment (see docs/configuration.md).
import { runServiceMain } from '@medsyn/service-kit';
import { pretrainerService } from './service';

runServiceMain(pretrainerService());
