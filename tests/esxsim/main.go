// esxsim: ceso's launcher for govmomi's ESXi simulator (vSphere SOAP API, HostAgent model).
//
// Build (GOPATH mode, Debian packages golang-go and golang-github-vmware-govmomi-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o target/esxsim/esxsim tests/esxsim/main.go
//
// Once ready it prints on stdout, one per line, then flushes:
//
//	ESXSIM_URL=https://127.0.0.1:PORT/sdk
//	ESXSIM_THUMBPRINT_SHA256=AB:CD:...     (only with -tls)
//	ESXSIM_THUMBPRINT_SHA1=AB:CD:...       (only with -tls)
//	ESXSIM_CA_FILE=/path                   (only with -tls and -ca-out)
//	ESXSIM_DATASTORE=LocalDS_0
//	ESXSIM_DATASTORE_DIR=/path
//	ESXSIM_READY=1                         (always last)
//
// Everything else (simulator logs, errors) goes to stderr.
//
// Extra HTTP endpoints served next to the simulator's own:
//
//	POST   /_esxsim/faults?rule=METHOD[@MOID]=[task:]FAULT[*N]   add a fault rule (400 if invalid)
//	GET    /_esxsim/faults                                       list the active rules (JSON)
//	DELETE /_esxsim/faults                                       remove all rules
//	GET    /_esxsim/stats    {"total": N, "methods": {"Login": 1, ...}, "injected": N, "panics": N}
//	DELETE /_esxsim/stats    reset the counters
//
// A SOAP request carrying the header "X-Esxsim-Hidden: 1" is neither counted in the
// stats nor subject to fault injection (used by test helpers that read the host back).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

const datastoreName = "LocalDS_0"

// The dangling datastore reference that esx.Datacenter carries in its static content.
var danglingDatastore = types.ManagedObjectReference{Type: "Datastore", Value: "57089c25-85e3ccd4-17b6-000c29d0beb3"}

// ---------------------------------------------------------------------------------------------
// flags

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "esxsim: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	var (
		listen       = flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
		useTLS       = flag.Bool("tls", false, "serve HTTPS with a CA and leaf certificate generated at start")
		caOut        = flag.String("ca-out", "", "with -tls: write the generated CA certificate (PEM) to this file")
		tlsCert      = flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM; with -tls-key) instead of generating one, so the thumbprint is the same on every start")
		tlsKey       = flag.String("tls-key", "", "private key (PEM) of -tls-cert")
		user         = flag.String("user", "", "user name to enforce (with -pass); default: any non-empty credentials are accepted")
		pass         = flag.String("pass", "", "password to enforce (with -user)")
		dsDir        = flag.String("datastore-dir", "", "directory backing datastore "+datastoreName+" (created if missing; default: a temporary directory removed at exit)")
		benchVMs     = flag.Int("vms", 0, "number of extra powered-off VMs named bench-NNNN (1 vCPU, 32 MB, 1 MB disk, e1000 on VM Network)")
		sessionIdle  = flag.Duration("session-idle", 0, "expire sessions idle for this long (between T and 2T); 0 = never")
		delayMs      = flag.Int("delay-ms", 0, "delay every SOAP call by this many milliseconds")
		jitter       = flag.Float64("delay-jitter", 0, "delay jitter as a coefficient of variation")
		exitOnEOF    = flag.Bool("exit-on-stdin-eof", false, "exit when stdin reaches end of file (dies with its parent)")
		methodDelays multiFlag
		faults       multiFlag
	)
	flag.Var(&methodDelays, "method-delay", "METHOD=MS: extra delay for one SOAP method (repeatable, or comma-separated)")
	flag.Var(&faults, "fault", "fault injection rule METHOD[@MOID]=[task:]FAULT[*N] (repeatable)")
	flag.Parse()

	if flag.NArg() != 0 {
		fatalf("unexpected arguments: %v", flag.Args())
	}
	if (*user == "") != (*pass == "") {
		fatalf("-user and -pass must be given together")
	}

	front := &frontHandler{methods: map[string]int{}}
	for _, spec := range faults {
		r, err := parseRule(spec)
		if err != nil {
			fatalf("-fault %q: %v", spec, err)
		}
		front.rules = append(front.rules, r)
	}

	md := map[string]int{}
	for _, item := range methodDelays {
		for _, kv := range strings.Split(item, ",") {
			if kv == "" {
				continue
			}
			i := strings.LastIndex(kv, "=")
			if i <= 0 {
				fatalf("-method-delay %q: want METHOD=MS", kv)
			}
			ms, err := strconv.Atoi(kv[i+1:])
			if err != nil || ms < 0 {
				fatalf("-method-delay %q: bad milliseconds", kv)
			}
			md[kv[:i]] = ms
		}
	}

	// Datastore directory.
	removeDir := ""
	dir := *dsDir
	if dir == "" {
		d, err := ioutil.TempDir("", "esxsim-ds-")
		if err != nil {
			fatalf("creating temporary datastore dir: %v", err)
		}
		dir, removeDir = d, d
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatalf("creating datastore dir: %v", err)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		fatalf("datastore dir: %v", err)
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	cleanup := func() {
		if removeDir != "" {
			_ = os.RemoveAll(removeDir)
		}
	}

	simulator.SessionIdleTimeout = *sessionIdle

	// The ESX model, without its own datastore and VMs: we create LocalDS_0 in our directory and
	// the two default VMs exactly like Model.Create would (same order, hence the same morefs).
	model := simulator.ESX()
	model.Datastore = 0
	model.Machine = 0
	if err := model.Create(); err != nil {
		cleanup()
		fatalf("creating model: %v", err)
	}
	if err := populate(model, dir, *benchVMs); err != nil {
		cleanup()
		fatalf("populating inventory: %v", err)
	}

	// Create() made Service.delay point at model.DelayConfig, so setting it now takes effect.
	model.DelayConfig.Delay = *delayMs
	model.DelayConfig.DelayJitter = *jitter
	if len(md) > 0 {
		model.DelayConfig.MethodDelay = md
	}
	front.delay = &model.DelayConfig

	listenURL := &url.URL{Host: *listen}
	if *user != "" {
		listenURL.User = url.UserPassword(*user, *pass)
	}
	model.Service.Listen = listenURL

	var leafDER []byte
	var caPEM []byte
	if (*tlsCert == "") != (*tlsKey == "") {
		cleanup()
		fatalf("-tls-cert and -tls-key go together")
	}
	if *tlsCert != "" {
		*useTLS = true
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			cleanup()
			fatalf("loading %s and %s: %v", *tlsCert, *tlsKey, err)
		}
		leafDER = cert.Certificate[0]
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else if *useTLS {
		cert, ca, err := generateCerts()
		if err != nil {
			cleanup()
			fatalf("generating certificates: %v", err)
		}
		leafDER = cert.Certificate[0]
		caPEM = ca
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	server := model.Service.NewServer()
	front.next = model.Service.ServeMux
	// No client knows the port yet, so replacing the handler here is safe.
	server.Config.Handler = front

	addr := server.Listener.Addr().(*net.TCPAddr)
	scheme := "http"
	if *useTLS {
		scheme = "https"
	}

	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ESXSIM_URL=%s://%s/sdk\n", scheme, net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port)))
	if *useTLS {
		s256 := sha256.Sum256(leafDER)
		s1 := sha1.Sum(leafDER)
		fmt.Fprintf(out, "ESXSIM_THUMBPRINT_SHA256=%s\n", colonHex(s256[:]))
		fmt.Fprintf(out, "ESXSIM_THUMBPRINT_SHA1=%s\n", colonHex(s1[:]))
		if *caOut != "" {
			if err := ioutil.WriteFile(*caOut, caPEM, 0o644); err != nil {
				cleanup()
				fatalf("writing %s: %v", *caOut, err)
			}
			abs, _ := filepath.Abs(*caOut)
			fmt.Fprintf(out, "ESXSIM_CA_FILE=%s\n", abs)
		}
	}
	fmt.Fprintf(out, "ESXSIM_DATASTORE=%s\n", datastoreName)
	fmt.Fprintf(out, "ESXSIM_DATASTORE_DIR=%s\n", dir)
	fmt.Fprintf(out, "ESXSIM_READY=1\n")
	if err := out.Flush(); err != nil {
		cleanup()
		os.Exit(1)
	}

	done := make(chan string, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() { done <- "signal " + (<-sigs).String() }()
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(ioutil.Discard, os.Stdin)
			done <- "stdin closed"
		}()
	}
	why := <-done
	log.Printf("esxsim: exiting (%s)", why)
	cleanup()
	os.Exit(0)
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// ---------------------------------------------------------------------------------------------
// inventory

func populate(model *simulator.Model, dir string, bench int) error {
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return err
	}

	// Drop the dangling datastore reference of the static ESX datacenter.
	if dc, ok := simulator.Map.Get(esx.Datacenter.Reference()).(*simulator.Datacenter); ok {
		simulator.Map.WithLock(dc, func() {
			simulator.RemoveReference(&dc.Datastore, danglingDatastore)
		})
	}

	host := object.NewHostSystem(c, esx.HostSystem.Reference())
	dss, err := host.ConfigManager().DatastoreSystem(ctx)
	if err != nil {
		return err
	}
	if _, err := dss.CreateLocalDatastore(ctx, datastoreName, dir); err != nil {
		return fmt.Errorf("CreateLocalDatastore: %v", err)
	}

	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return err
	}
	dc := object.NewDatacenter(c, esx.Datacenter.Reference())
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}

	create := func(name string, powerOn bool) error {
		nic := esx.EthernetCard
		config := types.VirtualMachineConfigSpec{
			Name:    name,
			GuestId: string(types.VirtualMachineGuestOsIdentifierOtherGuest),
			Files:   &types.VirtualMachineFileInfo{VmPathName: "[" + datastoreName + "]"},
		}
		var devices object.VirtualDeviceList
		scsi, _ := devices.CreateSCSIController("pvscsi")
		ide, _ := devices.CreateIDEController()
		cdrom, _ := devices.CreateCdrom(ide.(*types.VirtualIDEController))
		disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
			config.Files.VmPathName+" "+path.Join(name, "disk1.vmdk"))
		disk.CapacityInKB = 1024
		devices = append(devices, scsi, cdrom, disk, &nic)
		config.DeviceChange, _ = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)

		task, err := folders.VmFolder.CreateVM(ctx, config, pool, host)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("CreateVM %s: %v", name, err)
		}
		if powerOn {
			vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
			if _, err := vm.PowerOn(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	// The model's defaults: ha-host_VM0, ha-host_VM1, powered on (Autostart).
	for i := 0; i < 2; i++ {
		if err := create(fmt.Sprintf("%s_VM%d", esx.HostSystem.Reference().Value, i), true); err != nil {
			return err
		}
	}
	for i := 0; i < bench; i++ {
		if err := create(fmt.Sprintf("bench-%04d", i), false); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// certificates

func generateCerts() (tls.Certificate, []byte, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n.Add(n, big.NewInt(1))
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "esxsim test CA", Organization: []string{"ceso esxsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"ceso esxsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return cert, caPEM, nil
}

// ---------------------------------------------------------------------------------------------
// fault rules

type rule struct {
	Spec      string `json:"rule"`
	Method    string `json:"method"`
	Moid      string `json:"moid,omitempty"`
	Fault     string `json:"fault"`
	Task      bool   `json:"task"`
	Remaining int    `json:"remaining"` // -1 = unlimited
	faultType reflect.Type
}

var methodFaultType = reflect.TypeOf((*types.BaseMethodFault)(nil)).Elem()

// resolveFault maps a vim25 fault type name (with or without a "Fault" suffix) to its Go type.
func resolveFault(name string) (reflect.Type, string, error) {
	tf := types.TypeFunc()
	candidates := []string{name}
	if strings.HasSuffix(name, "Fault") {
		candidates = append(candidates, strings.TrimSuffix(name, "Fault"))
	}
	for _, n := range candidates {
		if t, ok := tf(n); ok && t.Kind() == reflect.Struct && reflect.PtrTo(t).Implements(methodFaultType) {
			return t, t.Name(), nil
		}
	}
	return nil, "", fmt.Errorf("%q is not a vim25 MethodFault type", name)
}

// parseRule parses METHOD[@MOID]=[task:]FAULT[*N].
func parseRule(spec string) (*rule, error) {
	spec = strings.TrimSpace(spec)
	eq := strings.LastIndex(spec, "=")
	if eq <= 0 || eq == len(spec)-1 {
		return nil, errors.New("want METHOD[@MOID]=[task:]FAULT[*N]")
	}
	lhs, rhs := spec[:eq], spec[eq+1:]
	r := &rule{Spec: spec, Remaining: -1}
	if at := strings.Index(lhs, "@"); at >= 0 {
		r.Method, r.Moid = lhs[:at], lhs[at+1:]
		if r.Moid == "" {
			return nil, errors.New("empty MOID after @")
		}
	} else {
		r.Method = lhs
	}
	if r.Method == "" || strings.ContainsAny(r.Method, " \t<>/") {
		return nil, fmt.Errorf("bad method name %q", r.Method)
	}
	if strings.HasPrefix(rhs, "task:") {
		r.Task = true
		rhs = rhs[len("task:"):]
	}
	if star := strings.LastIndex(rhs, "*"); star >= 0 {
		n, err := strconv.Atoi(rhs[star+1:])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", rhs[star+1:])
		}
		r.Remaining = n
		rhs = rhs[:star]
	}
	t, name, err := resolveFault(rhs)
	if err != nil {
		return nil, err
	}
	r.faultType, r.Fault = t, name
	return r, nil
}

// ---------------------------------------------------------------------------------------------
// SOAP encoding, copied from the simulator (simulator.go) so injected faults look identical.

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct {
	Fault types.AnyType
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type taskResponse struct {
	XMLName   xml.Name
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

func encodeEnvelope(body interface{}) []byte {
	var out bytes.Buffer
	fmt.Fprint(&out, xml.Header)
	e := xml.NewEncoder(&out)
	err := e.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		log.Printf("esxsim: encoding response: %v", err)
	}
	return out.Bytes()
}

func writeSoapFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	body := struct {
		Fault *soapFault
	}{&soapFault{Code: "ServerFaultCode", String: msg}}
	body.Fault.Detail.Fault = &faultDetail{fault}
	data := encodeEnvelope(body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(data)
}

func writeTaskResponse(w http.ResponseWriter, method string, task types.ManagedObjectReference) {
	// Wrapped in an anonymous struct: taskResponse's XMLName would otherwise replace soapenv:Body.
	body := struct {
		Res *taskResponse
	}{&taskResponse{
		XMLName:   xml.Name{Space: "urn:" + vim25.Namespace, Local: method + "Response"},
		Returnval: task,
	}}
	data := encodeEnvelope(body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// soapMethod extracts the method name (first child of Body) and its _this value.
func soapMethod(body []byte) (method string, this types.ManagedObjectReference) {
	d := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	depth := 0 // depth inside the method element
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case !inBody:
				if t.Name.Local == "Body" {
					inBody = true
				}
			case method == "":
				method = t.Name.Local
				depth = 0
			default:
				depth++
				if depth == 1 && t.Name.Local == "_this" {
					for _, a := range t.Attr {
						if a.Name.Local == "type" {
							this.Type = a.Value
						}
					}
					var text strings.Builder
					for {
						tok, err := d.Token()
						if err != nil {
							return
						}
						if cd, ok := tok.(xml.CharData); ok {
							text.Write(cd)
							continue
						}
						break
					}
					this.Value = strings.TrimSpace(text.String())
					return
				}
			}
		case xml.EndElement:
			if method != "" {
				if depth == 0 {
					return
				}
				depth--
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------
// front handler

type frontHandler struct {
	next  http.Handler
	delay *simulator.DelayConfig

	mu       sync.Mutex
	rules    []*rule
	total    int
	methods  map[string]int
	injected int
	panics   int
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_esxsim/faults":
		f.serveFaults(w, r)
		return
	case "/_esxsim/stats":
		f.serveStats(w, r)
		return
	}

	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Printf("esxsim: panic serving %s %s: %v\n%s", r.Method, r.URL.Path, p, debug.Stack())
				panic(http.ErrAbortHandler)
			}
		}()
		f.next.ServeHTTP(w, r)
		return
	}

	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	method, this := soapMethod(body)
	hidden := r.Header.Get("X-Esxsim-Hidden") != ""

	if !hidden && method != "" {
		var hit *rule
		f.mu.Lock()
		f.total++
		f.methods[method]++
		for i, rl := range f.rules {
			if rl.Method != method || (rl.Moid != "" && rl.Moid != this.Value) {
				continue
			}
			hit = rl
			if rl.Remaining > 0 {
				rl.Remaining--
				if rl.Remaining == 0 {
					f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
				}
			}
			f.injected++
			break
		}
		f.mu.Unlock()
		if hit != nil {
			f.inject(w, hit, method, this)
			return
		}
	}

	f.serveSDK(w, r, method, this)
}

func (f *frontHandler) inject(w http.ResponseWriter, rl *rule, method string, this types.ManagedObjectReference) {
	if f.delay != nil {
		d := f.delay.Delay
		if md, ok := f.delay.MethodDelay[method]; ok {
			d += md
		}
		if d > 0 {
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
	}
	fault := reflect.New(rl.faultType).Interface().(types.BaseMethodFault)
	if !rl.Task {
		writeSoapFault(w, "injected "+rl.Fault, fault)
		return
	}
	name := strings.TrimSuffix(method, "_Task") + "Task"
	entity := this
	if entity.Type == "" {
		entity = types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"}
	}
	task := simulator.CreateTask(entity, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})
	writeTaskResponse(w, method, task.Run())
}

type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// vmCreators are the methods whose panics can leave a nameless VM behind in their folder (_this).
var vmCreators = map[string]bool{
	"CreateVM_Task":   true,
	"RegisterVM_Task": true,
}

func vmSet() map[types.ManagedObjectReference]bool {
	set := map[types.ManagedObjectReference]bool{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		set[e.Reference()] = true
	}
	return set
}

func (f *frontHandler) serveSDK(w http.ResponseWriter, r *http.Request, method string, this types.ManagedObjectReference) {
	var before map[types.ManagedObjectReference]bool
	if vmCreators[method] {
		before = vmSet()
	}
	tw := &trackingWriter{ResponseWriter: w}
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		f.mu.Lock()
		f.panics++
		f.mu.Unlock()
		log.Printf("esxsim: simulator panic in %s (_this %s:%s): %v\n%s", method, this.Type, this.Value, p, debug.Stack())
		if before != nil {
			removeGhosts(this, before)
		}
		if tw.wrote {
			panic(http.ErrAbortHandler)
		}
		writeSoapFault(w, fmt.Sprintf("simulator panic in %s: %v", method, p),
			&types.SystemError{Reason: fmt.Sprintf("simulator panic: %v", p)})
	}()
	f.next.ServeHTTP(tw, r)
}

// removeGhosts unregisters the nameless VMs a panicking create left in folder.
func removeGhosts(folderRef types.ManagedObjectReference, before map[types.ManagedObjectReference]bool) {
	folder, ok := simulator.Map.Get(folderRef).(*simulator.Folder)
	if !ok {
		return
	}
	var ghosts []types.ManagedObjectReference
	simulator.Map.WithLock(folder, func() {
		for _, ref := range folder.ChildEntity {
			if ref.Type != "VirtualMachine" || before[ref] {
				continue
			}
			if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); !ok || vm.Name == "" {
				ghosts = append(ghosts, ref)
			}
		}
	})
	for _, ref := range ghosts {
		log.Printf("esxsim: removing ghost VM %s left by the panic", ref.Value)
		simulator.Map.Remove(ref)
		simulator.Map.RemoveReference(folder, &folder.ChildEntity, ref)
	}
}

func (f *frontHandler) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		rules := append([]*rule{}, f.rules...)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"rules": rules})
	case http.MethodPost:
		_ = r.ParseForm()
		specs := r.Form["rule"]
		if len(specs) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing rule parameter"})
			return
		}
		var parsed []*rule
		for _, spec := range specs {
			rl, err := parseRule(spec)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("rule %q: %v", spec, err)})
				return
			}
			parsed = append(parsed, rl)
		}
		f.mu.Lock()
		f.rules = append(f.rules, parsed...)
		n := len(f.rules)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"added": len(parsed), "rules": n})
	case http.MethodDelete:
		f.mu.Lock()
		n := len(f.rules)
		f.rules = nil
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"removed": n})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *frontHandler) serveStats(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		methods := make(map[string]int, len(f.methods))
		for k, v := range f.methods {
			methods[k] = v
		}
		v := map[string]interface{}{"total": f.total, "methods": methods, "injected": f.injected, "panics": f.panics}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, v)
	case http.MethodDelete:
		f.mu.Lock()
		f.total, f.injected, f.panics = 0, 0, 0
		f.methods = map[string]int{}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
